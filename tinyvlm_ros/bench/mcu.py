"""MCU benchmark: instructions per frame under QEMU ``-icount`` and the flash/RAM budget of each port.

``python -m tinyvlm_ros.bench.mcu [--frames 3] [--targets qemu-m7,qemu-m4,...]`` prints a
markdown report (the numbers in docs/mcu.md come from it).  Instructions are counted
exactly: with ``-icount shift=6`` every instruction takes 64 ns of virtual time, SysTick
counts the board clock, and the firmware measures ticks per 1000 instructions at boot.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Dict, List, Optional

import numpy as np

from tinyvlm_ros.mcu.emulate import Emulator, binary_path, build
from tinyvlm_ros.mcu.blob import table_from_embeddings
from tinyvlm_ros.mcu.link import McuLink

DEFAULT_TARGETS = ["qemu-m7", "qemu-m4", "qemu-m55", "qemu-m55-dsp", "qemu-m7-plain", "qemu-m4-plain"]
CORES = {"qemu-m4": "Cortex-M4", "qemu-m7": "Cortex-M7", "qemu-m55": "Cortex-M55",
         "qemu-m4-plain": "Cortex-M4", "qemu-m7-plain": "Cortex-M7", "qemu-m55-dsp": "Cortex-M55"}


def measure(target: str, frames: int = 3, seed: int = 0) -> Dict[str, float]:
    """Instructions per frame (mean, min, max) and MACs for one target, default model, 4 query rows."""
    from tinyvlm_ros.testing.scenes import make_scene

    build(target)
    rng = np.random.default_rng(seed)
    with Emulator(target, icount=6) as emu, McuLink(emu.url, timeout=60.0) as link:
        info = link.info
        link.load_table(table_from_embeddings(rng.normal(size=(16, 128)), 64))
        link.set_query([0, 1, 2, 3], threshold=0.25)
        counts, macs = [], 0
        for i in range(frames):
            img = make_scene(seed=seed + i, width=info["input_w"], height=info["input_h"]).image
            res = link.infer(img)
            counts.append(res.ticks * 1000.0 / info["ticks_per_kinstr"])
            macs = res.macs
        path = {0: "plain C", 1: "DSP (SMLAD)", 2: "MVE"}.get(info["kernel_path"], "?")
    return {"instructions": float(np.mean(counts)), "min": min(counts), "max": max(counts), "macs": macs,
            "ticks_per_kinstr": info["ticks_per_kinstr"], "path": path}


def _symbol_sizes(elf: str) -> Dict[str, int]:
    out = subprocess.run(["arm-none-eabi-nm", "-S", "--size-sort", elf], capture_output=True, text=True,
                         check=True).stdout
    sizes: Dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    addrs = subprocess.run(["arm-none-eabi-nm", elf], capture_output=True, text=True, check=True).stdout
    sym = {p[2]: int(p[0], 16) for p in (line.split() for line in addrs.splitlines()) if len(p) == 3}
    sizes["model_blob"] = sym["tvlm_default_model_end"] - sym["tvlm_default_model"]
    return sizes


def size_report(target: str) -> Dict[str, int]:
    """Flash (code + built-in model) and RAM (arena, device state, stack) of one port, in bytes."""
    build(target)
    elf = str(binary_path(target))
    out = subprocess.run(["arm-none-eabi-size", "-A", elf], capture_output=True, text=True, check=True).stdout
    sec = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sec[parts[0]] = int(parts[1])
    syms = _symbol_sizes(elf)
    flash = sec.get(".vectors", 0) + sec.get(".text", 0) + sec.get(".ARM.exidx", 0) + sec.get(".data", 0)
    ram = sec.get(".data", 0) + sec.get(".bss", 0) + sec.get(".stack", 0) + sec.get(".boot_seed", 0)
    model = syms["model_blob"]
    return {"flash": flash, "code": flash - model, "model": model, "ram": ram, "arena": syms.get("arena", 0),
            "device": syms.get("dev", 0), "stack": sec.get(".stack", 0), "total": flash + ram}


def main(argv: Optional[List[str]] = None) -> int:
    """Print the benchmark report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS))
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    print("| target | core | kernels | instructions / frame | MACs / frame | instr / MAC |")
    print("|---|---|---|---|---|---|")
    for t in targets:
        m = measure(t, args.frames)
        print(f"| {t} | {CORES.get(t, '?')} | {m['path']} | {m['instructions'] / 1e6:.2f} M "
              f"({m['min'] / 1e6:.3f}-{m['max'] / 1e6:.3f}) | {m['macs'] / 1e6:.2f} M | "
              f"{m['instructions'] / m['macs']:.2f} |", flush=True)
    print()
    print("| target | flash: code | flash: model | flash total | RAM: arena | RAM: device state | RAM: stack "
          "| RAM total | flash + RAM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in ("qemu-m4", "qemu-m7", "qemu-m55"):
        s = size_report(t)
        print(f"| {t} | {s['code']} | {s['model']} | {s['flash']} | {s['arena']} | {s['device']} "
              f"| {s['stack']} | {s['ram']} | {s['total']} ({s['total'] / 1024:.0f} KiB) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
