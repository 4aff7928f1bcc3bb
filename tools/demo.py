"""``make demo``: replay a demo bag live through detect_node and print the detections as they arrive.

Steps, each idempotent and each wait bounded:
1. models: the real model set from the cache when it has been fetched and
   exported, otherwise the generated known-answer set (said plainly);
2. a demo bag of generated scenes with known answers (out/demo/bag; out/demo-mcu/ for the MCU);
3. detect_node started as its own process on the bag's topics;
4. the bag played over DDS with the standing command "pick the red block",
   detections printed as they come back;
5. the report (out/demo/run/report.md, naming the model set and its kind first) and its headline.

Run it with the ROS environment sourced and the package installed (``make
demo`` does both).  Ctrl-C stops the replay and the node cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "pick the red block"


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def pick_models(cache: Optional[Path]) -> Tuple[Path, str]:
    """Return (model set dir, description): real ones if exported in the cache, else known-answer ones."""
    real = None
    try:
        from tinyvlm_ros.models.registry import cache_dir, default_model_set_dir

        real = default_model_set_dir(cache)
        base = cache_dir(cache)
    except ImportError:
        base = cache or Path.home() / ".cache" / "tinyvlm_ros"
    if real is not None and (real / "manifest.json").is_file():
        kind = json.loads((real / "manifest.json").read_text()).get("kind", "?")
        if kind == "real":
            return real, f"REAL models from the cache: {real}"
        say(f"the cache's default set at {real} is of kind {kind!r}, not real; not using it")
    from tinyvlm_ros.testing.models import make_known_answer_set

    ka = Path(base) / "sets" / "known-answer"
    if not (ka / "manifest.json").is_file():
        if ka.exists():
            shutil.rmtree(ka)
        made = make_known_answer_set(ka)
        ka = Path(made) if made else ka
    where = real if real is not None else "the cache"
    return ka, (f"GENERATED KNOWN-ANSWER models at {ka} (no real model set at {where}; "
                "`tinyvlm models --help` shows how to fetch and export the real ones)")


def detect_node_exe() -> Path:
    """Return the installed detect_node (what `ros2 run tinyvlm_ros detect_node` runs)."""
    env = os.environ.get("TINYVLM_INSTALL_PREFIX")
    if env:
        prefix = Path(env)
    else:
        try:
            from ament_index_python.packages import get_package_prefix

            prefix = Path(get_package_prefix("tinyvlm_ros"))
        except Exception:  # not sourced: fall back to the colcon install next to the sources
            prefix = ROOT / "install" / "tinyvlm_ros"
    exe = prefix / "lib" / "tinyvlm_ros" / "detect_node"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} not found: run `make build` (colcon build) first")
    return exe


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGINT the node's process group, then SIGKILL it if it does not exit in time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        say(f"detect_node ignored SIGINT for {timeout_s:g} s; killing it")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def start_mcu(args: argparse.Namespace, teacher: Path):
    """Train (once) the distilled encoder and start the firmware under QEMU.

    Returns the emulator, the node's parameters and the encoder's directory.
    """
    from tinyvlm_ros.mcu.emulate import Emulator
    from tinyvlm_ros.models.registry import cache_dir

    distilled = args.mcu_model or cache_dir(args.cache) / "mcu" / "distilled-known-answer"
    if not (distilled / "model.tvm").is_file():
        say(f"training the MCU encoder once into {distilled} (Matryoshka distillation from {teacher}, "
            "a few minutes on 2 cores)")
        subprocess.run([sys.executable, "-m", "tinyvlm_ros.cli", "mcu", "distill", "--teacher", str(teacher),
                        "--generate", "600", "--epochs", "25", "--out", str(distilled), "--quiet"],
                       check=True, timeout=3600)
    emulator = Emulator("qemu-m7", model=str(distilled / "model.tvm"), start_timeout=60)
    url = emulator.start()
    say(f"firmware (Cortex-M7 under QEMU) with the distilled encoder {distilled / 'model.tvm'} at {url}")
    # QEMU frames are slow (the emulated UART carries the whole frame): the node drops what it cannot take
    return emulator, {"backend": "mcu", "serial_port": url, "mcu_model_dir": str(distilled),
                      "mcu_timeout_s": 3.0, "model_dir": str(teacher)}, distilled


def model_set_identity(models: Path, distilled: Optional[Path] = None) -> dict:
    """Name and kind of the model set the node runs, for the report (an MCU encoder by its teacher's)."""
    from tinyvlm_ros.models.manifest import load_manifest

    ms = load_manifest(models, verify_hashes=False)
    if distilled is None:
        return {"models": ms.name, "kind": ms.kind}
    return {"models": f"{distilled.name} (MCU encoder distilled from {ms.name})", "kind": ms.kind}


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default out/demo, out/demo-mcu for the mcu backend)")
    ap.add_argument("--frames", type=int, default=None, help="frames in the demo bag (default 50; mcu 20)")
    ap.add_argument("--rate", type=float, default=None,
                    help="replay rate in Hz (default 5; mcu 1: QEMU frames are slow, see docs/mcu.md)")
    ap.add_argument("--models", type=Path, help="model set to use instead of choosing one")
    ap.add_argument("--cache", type=Path,
                    help="model cache (default $TINYVLM_MODELS or ~/.cache/tinyvlm_ros)")
    ap.add_argument("--wait-node", type=float, default=120.0,
                    help="seconds to wait for detect_node (default 120)")
    ap.add_argument("--backend", choices=("local", "mcu"), default="local",
                    help="local: ONNX engine on this computer; mcu: the distilled int8 encoder in the "
                         "firmware under QEMU (Cortex-M7)")
    ap.add_argument("--mcu-model", type=Path, default=None,
                    help="distilled MCU encoder (tinyvlm mcu distill --out); default: trained once into "
                         "the cache from the known-answer teacher")
    args = ap.parse_args(argv)
    mcu = args.backend == "mcu"
    args.frames = args.frames or (20 if mcu else 50)
    args.rate = args.rate or (1.0 if mcu else 5.0)
    args.out = args.out or ROOT / "out" / ("demo-mcu" if mcu else "demo")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the demo talks to itself only
    os.environ.setdefault("TINYVLM_SOURCE_DIR", str(ROOT))  # the firmware sources, for the mcu backend

    from tinyvlm_ros.bench import bagio
    from tinyvlm_ros.bench.bag_cli import headline
    from tinyvlm_ros.bench.live import detect_node_args, run_live
    from tinyvlm_ros.bench.make_bag import make_bag

    t0 = time.monotonic()
    if args.models:
        models, what = args.models, f"models given: {args.models}"
    else:
        models, what = pick_models(args.cache)
    say(f"models: {what}")

    out = args.out
    bag = out / "bag"
    if bag.exists():
        shutil.rmtree(bag)
    out.mkdir(parents=True, exist_ok=True)
    # Compressed frames: what robots send across a network, and small enough that best-effort
    # DDS delivers them whole.
    make_bag(bag, storage="mcap", compressed=True, frames=args.frames, rate=args.rate, command=COMMAND)
    say(f"demo bag: {bag} ({args.frames} generated scenes at {args.rate:g} Hz, each with one red block)")

    emulator = None
    params = None
    distilled = None
    if args.backend == "mcu":
        emulator, params, distilled = start_mcu(args, models)
    exe = detect_node_exe()
    ros_args = detect_node_args(bagio.TOPIC_IMAGE_COMPRESSED, models, compressed=True, params=params)
    log_path = out / "detect_node.log"
    say(f"starting {exe.name} --ros-args {' '.join(ros_args)}  (log: {log_path})")
    with open(log_path, "wb") as log:
        node = subprocess.Popen([str(exe), "--ros-args", *ros_args], stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    shown = {"n": 0}

    def show(o) -> None:
        shown["n"] += 1
        objs = ", ".join(f"{d.label} {d.score:.2f} at ({d.center[0]:.0f}, {d.center[1]:.0f}) "
                         f"{d.size[0]:.0f}x{d.size[1]:.0f}" for d in o.detections) or "nothing"
        say(f"frame {o.index:3d}  {o.latency_s * 1e3:7.1f} ms  {objs}")

    try:
        say(f"replaying live with the standing command {COMMAND!r} (waiting up to {args.wait_node:g} s "
            "for the node to load its models)")
        summary = run_live(bag, out / "run", command=COMMAND, rate=args.rate, node_pid=node.pid,
                           wait_node_s=args.wait_node, answer_timeout_s=30.0, on_detections=show,
                           node_alive=lambda: node.poll() is None,
                           model_set=model_set_identity(models, distilled),
                           command_line="python tools/demo.py " + " ".join(argv or sys.argv[1:]))
    except (TimeoutError, ValueError, FileNotFoundError) as exc:
        say(f"error: {exc}")
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        if tail:
            print(f"--- last lines of {log_path} ---\n{tail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("interrupted; stopping detect_node")
        return 130
    finally:
        stop(node)
        if emulator is not None:
            emulator.stop()
    print(headline(summary, out / "run"))
    say(f"models: {what}")
    say(f"done in {time.monotonic() - t0:.0f} s; detections flowed for {shown['n']} frames")
    return 0 if summary["processed"] > 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # during set-up, before any node was started
        say("interrupted")
        sys.exit(130)
