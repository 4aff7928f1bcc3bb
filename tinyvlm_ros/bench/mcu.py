"""MCU benchmark: work per frame, link traffic per frame in both camera modes, memory, clock sync.

``python -m tinyvlm_ros.bench.mcu [--frames 3] [--targets ...] [--json F] [--markdown docs/mcu.md]``
measures and writes the numbers section of docs/mcu.md (between its ``mcu-bench`` markers);
``--render-only`` rewrites it from the JSON.  Everything in that section comes from the run:

* instructions per frame under QEMU ``-icount shift=6`` (every instruction takes 64 ns of
  virtual time, SysTick counts the board clock, the firmware measures ticks per 1000
  instructions at boot), so the count is exact and does not depend on the machine's load;
* link bytes and request/reply exchanges per frame, counted by the host link while
  :class:`McuEngine` runs a steady command in host-camera mode (the frame crosses the link)
  and in device-camera mode (only the query and the boxes do);
* flash and RAM of the Cortex-M images, and of images with a 100-phrase vocabulary built in
  at each prefix, from the ELF files;
* the clock translation's error bound (half the best CLOCK round trip per burst).

Frames per second are then computed from those measurements and the link and clock
assumptions stated in :data:`LINKS` and :data:`CORE_MHZ` (not measured: a datasheet figure
each).  Model: the firmware's built-in random-weight encoder: cost, traffic and sizes do not
depend on the weights, detection quality does (docs/distill.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from tinyvlm_ros.mcu.backend import HASH_TEXT_ID, McuEngine, hash_text_embed
from tinyvlm_ros.mcu.blob import table_from_embeddings
from tinyvlm_ros.mcu.clock import ClockSync
from tinyvlm_ros.mcu.codec import struct_size
from tinyvlm_ros.mcu.emulate import Emulator, binary_path, build
from tinyvlm_ros.mcu.link import McuLink, ram_row
from tinyvlm_ros.mcu.random_model import DEFAULT_MODEL_PATH
from tinyvlm_ros.mcu.vocab import build_vocab

DEFAULT_TARGETS = ["qemu-m7", "qemu-m4", "qemu-m55", "qemu-m55-dsp", "qemu-m7-plain", "qemu-m4-plain"]
SIZE_TARGETS = ["qemu-m4", "qemu-m7", "qemu-m55"]
CORES = {"qemu-m4": "Cortex-M4", "qemu-m7": "Cortex-M7", "qemu-m55": "Cortex-M55",
         "qemu-m4-plain": "Cortex-M4", "qemu-m7-plain": "Cortex-M7", "qemu-m55-dsp": "Cortex-M55"}
#: Assumed core clocks of parts of each class (STM32F4, STM32H7, Alif Ensemble E3 HP core), and one
#: instruction per cycle (the M7's dual issue does better, wait states worse).
CORE_MHZ = {"Cortex-M4": 168, "Cortex-M7": 480, "Cortex-M55": 400}
#: Link assumptions: payload bytes per second and the fixed cost of each request/reply exchange.
#: UART 8N1 carries 10 bits per byte and the device answers at once; USB full-speed CDC moves about
#: 1 MB/s of bulk data and a reply waits for the next 1 ms frame.
LINKS = {
    "UART 921600 baud": {"bytes_per_s": 921600 / 10, "exchange_s": 0.0},
    "USB FS CDC": {"bytes_per_s": 1.0e6, "exchange_s": 1.0e-3},
}
VOCAB_PHRASES = 100
PREFIXES = (16, 32, 64, 128)
START = "<!-- mcu-bench:start -->"
END = "<!-- mcu-bench:end -->"
COMMAND = "pick the red block and the blue ball"


# ------------------------------------------------------------------------------------------- compute
def measure_compute(target: str, frames: int = 3, seed: int = 0) -> Dict[str, float]:
    """Instructions per frame (mean, min, max) and MACs for one target, built-in model, 4 query rows."""
    from tinyvlm_ros.testing.scenes import make_scene

    build(target)
    rng = np.random.default_rng(seed)
    with Emulator(target, icount=6) as emu, McuLink(emu.url, timeout=60.0) as link:
        info = link.info
        link.load_table(table_from_embeddings(rng.normal(size=(16, 128)), 64))
        link.set_query([ram_row(i) for i in range(4)], threshold=0.25)
        counts, macs = [], 0
        for i in range(frames):
            img = make_scene(seed=seed + i, width=info["input_w"], height=info["input_h"]).image
            res = link.infer(img)
            counts.append(res.ticks * 1000.0 / info["ticks_per_kinstr"])
            macs = res.macs
        path = {0: "plain C", 1: "DSP (SMLAD)", 2: "MVE"}.get(info["kernel_path"], "?")
    return {"target": target, "core": CORES.get(target, "?"), "instructions": float(np.mean(counts)),
            "min": min(counts), "max": max(counts), "macs": macs,
            "ticks_per_kinstr": info["ticks_per_kinstr"], "path": path}


# ---------------------------------------------------------------------------------------------- link
def measure_link(target: str = "host", frames: int = 4) -> Dict[str, Dict[str, float]]:
    """Bytes both ways and exchanges per frame of a steady two-target command, in each camera mode.

    The first frame (rows uploaded, clock synchronised) is left out: the numbers are the steady state.
    """
    from tinyvlm_ros.testing.scenes import make_scene

    build(target)
    out: Dict[str, Dict[str, float]] = {}
    image = make_scene(seed=1, width=640, height=480).image
    with Emulator(target) as emu:
        link = McuLink(emu.url, timeout=30.0)
        eng = McuEngine(link, hash_text_embed, dims=32, text_id=HASH_TEXT_ID, score_threshold=0.25,
                        max_detections=8, allow_random_model=True).open()
        modes = {"host camera (INFER: frame up, boxes back)": lambda: eng.detect(image, COMMAND),
                 "device camera (CAPTURE: query up, boxes back)": lambda: eng.capture(COMMAND)[0],
                 "device camera + 24x24 thumbnail": lambda: eng.capture(COMMAND, thumb_div=4)[0]}
        for name, run in modes.items():
            run()
            eng.clock.resync_s = 1e9  # steady state: no clock burst inside the measured frames
            tx0, rx0, ex0 = link.stats["tx_bytes"], link.stats["rx_bytes"], sum(link.ops.values())
            for _ in range(frames):
                run()
            out[name] = {"tx": (link.stats["tx_bytes"] - tx0) / frames,
                         "rx": (link.stats["rx_bytes"] - rx0) / frames,
                         "exchanges": (sum(link.ops.values()) - ex0) / frames}
        eng.close()
    return out


def measure_clock(target: str, bursts: int = 6) -> Dict[str, float]:
    """Error bound of the device -> host clock translation: half the best round trip of each CLOCK burst."""
    build(target)
    with Emulator(target, start_timeout=60.0) as emu, McuLink(emu.url, timeout=15.0) as link:
        sync = ClockSync(burst=8)
        bounds = [sync.sync(link.clock, link.boot_id).half_rtt_ns for _ in range(bursts)]
    return {"target": target, "p50_us": float(np.median(bounds)) / 1e3, "max_us": max(bounds) / 1e3}


# -------------------------------------------------------------------------------------------- memory
def _sections(elf: Path) -> Dict[str, int]:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    sec = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sec[parts[0]] = int(parts[1])
    return sec


def _symbols(elf: Path) -> Dict[str, int]:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    addr: Dict[str, int] = {}
    size: Dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            size[parts[3]] = int(parts[1], 16)
        if len(parts) >= 3:
            addr[parts[-1]] = int(parts[0], 16)
    size["model_blob"] = addr["tvlm_default_model_end"] - addr["tvlm_default_model"]
    size["vocab_blob"] = addr["tvlm_builtin_vocab_end"] - addr["tvlm_builtin_vocab"]
    return size


def size_report(target: str, vocab: Optional[Path] = None) -> Dict[str, int]:
    """Flash (code, built-in model, built-in vocabulary) and RAM (arena, device state, stack), in bytes."""
    build(target, vocab=vocab)
    elf = binary_path(target, vocab)
    sec = _sections(elf)
    syms = _symbols(elf)
    flash = sec.get(".vectors", 0) + sec.get(".text", 0) + sec.get(".ARM.exidx", 0) + sec.get(".data", 0)
    ram = sec.get(".data", 0) + sec.get(".bss", 0) + sec.get(".stack", 0) + sec.get(".boot_seed", 0)
    model, vocab_bytes = syms["model_blob"], syms["vocab_blob"]
    return {"target": target, "flash": flash, "code": flash - model - vocab_bytes, "model": model,
            "vocab": vocab_bytes, "ram": ram, "arena": syms.get("arena", 0), "device": syms.get("dev", 0),
            "stack": sec.get(".stack", 0), "total": flash + ram}


def vocab_memory(target: str = "qemu-m4", phrases: int = VOCAB_PHRASES) -> List[Dict[str, int]]:
    """Flash and RAM of an image with a ``phrases``-phrase vocabulary built in, at each prefix."""
    base = size_report(target)
    model_id = int.from_bytes(DEFAULT_MODEL_PATH.read_bytes()[8:12], "little")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dims in PREFIXES:
            path = Path(tmp) / f"vocab{phrases}x{dims}.tvtb"
            words = [f"phrase {i}" for i in range(phrases)]
            path.write_bytes(build_vocab(words, hash_text_embed, dims, model_id, HASH_TEXT_ID))
            s = size_report(target, path)
            rows.append({"dims": dims, "blob": path.stat().st_size, "flash_delta": s["flash"] - base["flash"],
                         "ram_delta": s["ram"] - base["ram"], "flash": s["flash"], "ram": s["ram"],
                         "total": s["total"]})
    return rows


# -------------------------------------------------------------------------------------------- report
def _fps(seconds: float) -> str:
    return f"{1.0 / seconds:.1f}" if seconds > 0 else "-"


def render(res: Dict) -> str:
    """Markdown of the numbers section from a result dict (what :func:`run` returns)."""
    lines = [START, "", f"Measured {res['date']} by `{res['command']}` (load average {res['load']}). "
             "Model: the firmware's built-in **random-weight** encoder (cost, traffic and sizes do not "
             "depend on the weights).", "",
             "### Work per frame (96x96x3 -> 12x12x128, 4 query rows at 64 dims)", "",
             "QEMU 7.2 with `-icount shift=6`: exact instruction counts from the device's own work counter.",
             "",
             "| target | core | kernels | instructions / frame | MACs / frame | instr / MAC |",
             "|---|---|---|---|---|---|"]
    for m in res["compute"]:
        lines.append(f"| {m['target']} | {m['core']} | {m['path']} | {m['instructions'] / 1e6:.2f} M "
                     f"({m['min'] / 1e6:.3f}-{m['max'] / 1e6:.3f}) | {m['macs'] / 1e6:.2f} M | "
                     f"{m['instructions'] / m['macs']:.2f} |")
    lines += ["", "### Link traffic per frame", "",
              f"Counted by the host link over steady frames of `{COMMAND}` (2 rows, 32 dims;"
              " "
              "the first frame, which uploads rows and synchronises the clock, is left out). The reply grows "
              f"by {struct_size('box')} bytes per box the device finds (threshold 0.25 here).", "",
              "| mode | host -> MCU bytes | MCU -> host bytes | exchanges |", "|---|---|---|---|"]
    for name, m in res["link"].items():
        lines.append(f"| {name} | {m['tx']:.0f} | {m['rx']:.0f} | {m['exchanges']:.1f} |")
    lines += ["", "### Frames per second: compute-bound vs link-bound", "",
              "Computed from the counts above. Compute: instructions / frame at one instruction per cycle at "
              + ", ".join(f"{mhz} MHz ({core})" for core, mhz in CORE_MHZ.items())
              + ". Link: bytes / rate + exchanges x fixed cost per exchange: "
              + "; ".join(f"{name}: {a['bytes_per_s'] / 1e3:.1f} kB/s, "
                          f"{a['exchange_s'] * 1e3:g} ms per exchange" for name, a in LINKS.items())
              + ". Both: the request/reply protocol is stop-and-wait, so a frame takes the sum (no overlap). "
              "Not counted: the device's CRC-16 and copy of received bytes (host camera: the whole frame) "
              "and, in device mode, the sensor's readout (the ports render a scene instead).", ""]
    head = ("| target | mode | compute fps | "
            + " | ".join(f"{link}: link fps | total fps" for link in LINKS) + " |")
    lines += [head, "|" + "---|" * (3 + 2 * len(LINKS))]
    for m in res["compute"]:
        if m["target"] not in ("qemu-m4", "qemu-m7", "qemu-m55"):
            continue
        t_comp = m["instructions"] / (CORE_MHZ[m["core"]] * 1e6)
        for mode, traffic in res["link"].items():
            cells = [m["target"], mode.split(" (")[0], _fps(t_comp)]
            for a in LINKS.values():
                t_link = ((traffic["tx"] + traffic["rx"]) / a["bytes_per_s"]
                          + traffic["exchanges"] * a["exchange_s"])
                cells += [_fps(t_link), _fps(t_link + t_comp)]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "### Memory", "", "`arm-none-eabi-size` of each image (RAM table capacity 256 rows x 128 "
              "dims, in the arena).", "",
              "| target | flash: code | flash: model | flash: vocabulary | flash total | RAM: arena | "
              "RAM: device state | RAM: stack | RAM total | flash + RAM |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in res["sizes"]:
        lines.append(f"| {s['target']} | {s['code']} | {s['model']} | {s['vocab']} | {s['flash']} | "
                     f"{s['arena']} | {s['device']} | {s['stack']} | {s['ram']} | {s['total']} "
                     f"({s['total'] / 1024:.0f} KiB) |")
    vm = res["vocab_memory"]
    lines += ["", f"Flash vocabulary built in ({vm['phrases']} phrases, "
              f"`make -C firmware {vm['target']} VOCAB=...`): what it adds to the image, per prefix. The "
              "rows are scored in place, so RAM does not grow.", "",
              "| prefix | blob bytes | flash added | RAM added | image flash | image flash + RAM "
              "| <= 1 MiB |",
              "|---|---|---|---|---|---|---|"]
    for r in vm["rows"]:
        lines.append(f"| {r['dims']} | {r['blob']} | {r['flash_delta']} | {r['ram_delta']} | {r['flash']} | "
                     f"{r['total']} | {'yes' if r['total'] <= 1 << 20 else 'NO'} |")
    lines += ["", "A phrase uploaded to the RAM table instead takes the same row bytes in the arena, whose "
              "capacity is reserved at boot (256 rows x (8 + 128) bytes)."]
    lines += ["", "### Clock translation (device capture time -> host time)", "",
              "| target | bound p50 | bound max |", "|---|---|---|"]
    for c in res["clock"]:
        lines.append(f"| {c['target']} | {c['p50_us']:.0f} us | {c['max_us']:.0f} us |")
    lines += ["", "Bound: half the shortest CLOCK round trip of a burst of 8 (see Device camera above); "
              "under QEMU it includes the emulated UART and the TCP socket.", "", END]
    return "\n".join(lines)


def write_markdown(res: Dict, path: Path) -> None:
    """Replace the section between the markers of ``path`` with :func:`render`."""
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{path} has no {START} ... {END} section to fill")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + render(res) + tail, encoding="utf-8")


def run(targets: List[str], frames: int) -> Dict:
    """Measure everything; returns the result dict :func:`render` takes."""
    res: Dict = {"date": datetime.date.today().isoformat(), "load": f"{os.getloadavg()[0]:.2f}",
                 "command": "python -m tinyvlm_ros.bench.mcu " + " ".join(sys.argv[1:])}
    res["compute"] = []
    for t in targets:
        res["compute"].append(measure_compute(t, frames))
        print(res["compute"][-1], flush=True)
    res["link"] = measure_link("host")
    res["sizes"] = [size_report(t) for t in SIZE_TARGETS]
    res["vocab_memory"] = {"target": "qemu-m4", "phrases": VOCAB_PHRASES, "rows": vocab_memory("qemu-m4")}
    res["clock"] = [measure_clock("host"), measure_clock("qemu-m4")]
    return res


def main(argv: Optional[List[str]] = None) -> int:
    """Measure (or re-render) and print or write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS))
    parser.add_argument("--json", type=Path, default=Path("docs/bench/mcu.json"), help="results file")
    parser.add_argument("--markdown", type=Path, help="fill this file's mcu-bench section (docs/mcu.md)")
    parser.add_argument("--render-only", action="store_true", help="only rewrite --markdown from --json")
    args = parser.parse_args(argv)
    if args.render_only:
        res = json.loads(args.json.read_text())
    else:
        res = run([t for t in args.targets.split(",") if t], args.frames)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    if args.markdown:
        write_markdown(res, args.markdown)
        print(f"wrote {args.markdown}")
    else:
        print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
