"""Start the firmware as a host process on a pseudo-terminal or under QEMU, and stop it cleanly.

``Emulator(target="host")`` runs ``firmware/build/host/tvlm_host`` and reads the pty path it
prints; ``qemu-m4``/``qemu-m7``/``qemu-m55`` run ``qemu-system-arm`` with the UART on a local
TCP socket (``nodelay`` so each reply is not held back by Nagle) and return a pyserial
``socket://`` URL.  Missing binaries are built with ``make -C firmware``.  Every wait has a
timeout; ``stop()`` terminates, then kills.

Flash that survives a restart: ``flash=FILE`` gives the firmware a writable vocabulary slot
kept in FILE (host build: ``--flash FILE``; QEMU, whose MPS2/MPS3 boards have no persistent
flash: ``--flash FILE`` on the semihosting command line, and the port reads the file into its
slot at boot and writes every erase/program through to it).  ``vocab=BLOB`` builds a
vocabulary into the firmware image (``make VOCAB=BLOB``, one build directory per blob).
"""

from __future__ import annotations

import os
import random
import re
import select
import shutil
import socket
import subprocess
import time
import zlib
from pathlib import Path
from typing import List, Optional, Union

from tinyvlm_ros.mcu.paths import firmware_dir

FIRMWARE = firmware_dir()

#: target -> (make target, QEMU machine, model slot address, boot seed address)
TARGETS = {
    "host": ("host", None, None, None),
    "qemu-m4": ("qemu-m4", "mps2-an386", 0x00070000, 0x20000000),
    "qemu-m7": ("qemu-m7", "mps2-an500", 0x00070000, 0x20000000),
    "qemu-m55": ("qemu-m55", "mps3-an547", 0x10060000, 0x30000000),
    "qemu-m4-plain": ("qemu-m4-plain", "mps2-an386", 0x00070000, 0x20000000),
    "qemu-m7-plain": ("qemu-m7-plain", "mps2-an500", 0x00070000, 0x20000000),
    "qemu-m55-dsp": ("qemu-m55-dsp", "mps3-an547", 0x10060000, 0x30000000),
}

PathLike = Union[str, Path]


def build_dir(vocab: Optional[PathLike] = None) -> Path:
    """Build directory: ``firmware/build``, or one per built-in vocabulary blob (by its CRC-32)."""
    if vocab is None:
        return FIRMWARE / "build"
    return FIRMWARE / "build" / f"vocab-{zlib.crc32(Path(vocab).read_bytes()):08x}"


def binary_path(target: str, vocab: Optional[PathLike] = None) -> Path:
    """Path of the firmware binary for a target (built or not), with an optional built-in vocabulary."""
    root = build_dir(vocab)
    if target == "host":
        return root / "host" / "tvlm_host"
    return root / target / f"tvlm_{target}.elf"


def build(target: str, timeout: float = 300.0, vocab: Optional[PathLike] = None) -> Path:
    """Run ``make -C firmware <target>`` (``VOCAB=`` when given); raises RuntimeError with make's output."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    cmd = ["make", "-C", str(FIRMWARE), TARGETS[target][0]]
    if vocab is not None:
        cmd += [f"VOCAB={Path(vocab).resolve()}", f"BUILD={build_dir(vocab)}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"building firmware target {target} failed:\n{proc.stdout[-3000:]}"
                           f"{proc.stderr[-3000:]}")
    return binary_path(target, vocab)


def qemu_available() -> bool:
    """Tell whether qemu-system-arm is on PATH."""
    return shutil.which("qemu-system-arm") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """One running firmware instance.

    Args:
        target: ``host``, ``qemu-m4``, ``qemu-m7`` or ``qemu-m55``.
        model: optional model blob file (default: the firmware's built-in model).
        kernel: ``dsp`` or ``plain`` (host target only; the Cortex-M builds use their best path).
        icount: QEMU ``-icount shift`` (e.g. 6) for reproducible work counts; None runs at full speed.
        boot_seed: seed of the boot id (default random, so each start is a new boot).
        build_missing: run make for the binary first (builds it when missing or older than its sources).
        start_timeout: seconds to wait for the firmware to come up.
        link_path: host target only: a symlink to the pty that keeps its name across restarts (the URL).
        flash: file that keeps the firmware's vocabulary flash slot across restarts (None: no writable flash).
        vocab: table blob built into the firmware image as its vocabulary (None: none).
    """

    def __init__(self, target: str = "host", model: Optional[str] = None, kernel: str = "dsp",
                 icount: Optional[int] = None, boot_seed: Optional[int] = None, build_missing: bool = True,
                 start_timeout: float = 20.0, link_path: Optional[str] = None,
                 flash: Optional[PathLike] = None, vocab: Optional[PathLike] = None) -> None:
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
        if kernel not in ("dsp", "plain"):
            raise ValueError(f"kernel must be dsp or plain, got {kernel!r}")
        self.target = target
        self.model = model
        self.kernel = kernel
        self.icount = icount
        self.boot_seed = boot_seed
        self.build_missing = build_missing
        self.start_timeout = start_timeout
        self.link_path = link_path
        if link_path and target != "host":
            raise ValueError("link_path is only supported for the host target")
        self.flash = Path(flash).resolve() if flash is not None else None
        if self.flash is not None and (" " in str(self.flash) or not self.flash.parent.is_dir()):
            raise ValueError(f"flash file {self.flash}: its directory must exist and the path hold no spaces")
        self.vocab = Path(vocab).resolve() if vocab is not None else None
        self.proc: Optional[subprocess.Popen] = None
        self.url: Optional[str] = None

    def command(self) -> List[str]:
        """Return the command line that starts the firmware (the host URL is known after start)."""
        binary = binary_path(self.target, self.vocab)
        seed = self.boot_seed if self.boot_seed is not None else random.getrandbits(32)
        if self.target == "host":
            cmd = [str(binary), "--kernel", self.kernel, "--boot-seed", str(seed)]
            if self.model:
                cmd += ["--model", str(self.model)]
            if self.link_path:
                cmd += ["--link", str(self.link_path)]
            if self.flash:
                cmd += ["--flash", str(self.flash)]
            return cmd
        _, machine, slot, seed_addr = TARGETS[self.target]
        self._port = _free_port()
        semihosting = "enable=on,target=native"
        if self.flash:
            # QEMU's option syntax doubles a comma inside a value
            semihosting += ",arg=tvlm,arg=--flash,arg=" + str(self.flash).replace(",", ",,")
        cmd = ["qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none",
               "-semihosting-config", semihosting, "-kernel", str(binary),
               "-serial", f"tcp:127.0.0.1:{self._port},server=on,wait=on,nodelay=on",
               "-device", f"loader,addr={seed_addr:#x},data={seed},data-len=4"]
        if self.icount is not None:
            cmd += ["-icount", f"shift={int(self.icount)}"]
        if self.model:
            cmd += ["-device", f"loader,file={self.model},addr={slot:#x},force-raw=on"]
        return cmd

    def start(self) -> str:
        """Start the firmware and return its pyserial URL; raises RuntimeError/TimeoutError."""
        if self.proc is not None:
            raise RuntimeError("emulator already started")
        if self.target != "host" and not qemu_available():
            raise RuntimeError("qemu-system-arm is not installed (Debian: qemu-system-arm)")
        binary = binary_path(self.target, self.vocab)
        if self.build_missing:
            # make decides: a binary older than its sources (e.g. after a protocol change) is rebuilt,
            # an up-to-date one costs a few milliseconds
            build(self.target, vocab=self.vocab)
        elif not binary.exists():
            raise FileNotFoundError(f"{binary} missing; run make -C firmware {TARGETS[self.target][0]}")
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        pattern = re.compile(r"TVLM_PTY (\S+)") if self.target == "host" else re.compile(
            r"waiting for connection on: \S*tcp:127\.0\.0\.1:(\d+)")
        line = self._wait_for(pattern)
        if self.target == "host":
            self.url = self.link_path or line
        else:
            self.url = f"socket://127.0.0.1:{self._port}"
        return self.url

    def _wait_for(self, pattern: "re.Pattern[str]") -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + self.start_timeout
        text = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 4096).decode(errors="replace")
                if not chunk:
                    break
                text += chunk
                m = pattern.search(text)
                if m:
                    return m.group(1)
            elif self.proc.poll() is not None:
                break
        self.stop()
        raise TimeoutError(f"firmware {self.target} did not come up within {self.start_timeout} s: "
                           f"{text[-500:]!r}")

    @property
    def running(self) -> bool:
        """Tell whether the firmware process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the firmware (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL at once, as a crash or an unplugged cable would (for recovery tests)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def restart(self) -> str:
        """Stop and start again (a new boot id); returns the new URL."""
        self.stop()
        return self.start()

    def __enter__(self) -> "Emulator":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
