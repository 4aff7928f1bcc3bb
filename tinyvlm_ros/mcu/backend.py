"""The microcontroller engine: :class:`McuEngine` implements :class:`tinyvlm_ros.types.Engine`.

Text never runs on the MCU.  A phrase the device's flash vocabulary holds is named
by its row there (looked up by phrase hash, nothing uploaded); any other phrase is
embedded on the host (``text_embed``, e.g. the CLIP text tower), cut to a
Matryoshka prefix of ``dims``, quantized to int8 with a per-row scale and loaded
into the MCU's RAM table.  Host-camera mode (:meth:`McuEngine.detect`): each frame
is resized to the MCU's input size and sent, and the boxes that come back in grid
cells are mapped to pixels of the original frame.  Device-camera mode
(:meth:`McuEngine.capture`): the MCU grabs the frame from its own camera; the
reply carries the capture time on the device clock, which
:class:`tinyvlm_ros.mcu.clock.ClockSync` translates into the host's clock.

Grounding: the MCU scores every phrase the command needs (targets, reference
objects, excluded objects; up to 16 rows per INFER) in one frame, and the boxes
per phrase go through the same resolver as the host engine
(:mod:`tinyvlm_ros.grounding.resolve`), so qualifiers, ordinals, counts,
relations and exclusions mean the same on both engines.  What the coarse grid
changes is written in docs/commands.md ("Engines").
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tinyvlm_ros.grounding import ParsedCommand, parse_targets
from tinyvlm_ros.grounding.resolve import Candidate, resolve
from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu.blob import pack_table, quantize_table
from tinyvlm_ros.mcu.clock import ClockSync, HostClock
from tinyvlm_ros.mcu.link import InferResult, McuLink, ram_row
from tinyvlm_ros.mcu.vocab import phrase_hash
from tinyvlm_ros.types import Detection, DetectionResult, Engine

log = logging.getLogger(__name__)

TextEmbed = Callable[[List[str]], np.ndarray]
Command = Union[str, Sequence[str], ParsedCommand]

#: text id of :func:`hash_text_embed` (a table's rows say which embedder made them)
HASH_TEXT_ID = zlib.crc32(b"tinyvlm hash_text_embed v1")


def hash_text_embed(phrases: List[str], dim: int = 128) -> np.ndarray:
    """Deterministic pseudo-random unit embeddings per phrase: a stand-in when no text tower is plugged in.

    Not semantic: useful for wiring, tests and random-weight firmware only.  Its text id is
    :data:`HASH_TEXT_ID`.
    """
    out = np.empty((len(phrases), dim), np.float32)
    for i, p in enumerate(phrases):
        v = np.random.default_rng(zlib.crc32(p.encode("utf-8"))).normal(size=dim)
        out[i] = v / np.linalg.norm(v)
    return out


def resize_input(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a frame to the MCU's input size (area interpolation; training uses the same)."""
    if image.shape[0] == height and image.shape[1] == width:
        return np.ascontiguousarray(image)
    try:
        import cv2

        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    except ImportError:  # nearest neighbour without OpenCV
        ys = (np.arange(height) * image.shape[0] / height).astype(int)
        xs = (np.arange(width) * image.shape[1] / width).astype(int)
        return np.ascontiguousarray(image[ys][:, xs])


@dataclass
class CaptureInfo:
    """Where and when a device-camera frame was taken.

    Attributes:
        device_us: capture time on the device clock (microseconds since its boot).
        stamp_ns: the same instant on the host clock the engine was given (ROS time in the node).
        error_ns: bound of ``stamp_ns``'s error (half the best clock round trip, plus drift).
        width, height: the device frame's size (the boxes' pixel frame).
        thumbnail: uint8 [h, w, c] thumbnail of the frame when asked for, else None.
    """

    device_us: int
    stamp_ns: int
    error_ns: int
    width: int
    height: int
    thumbnail: Optional[np.ndarray] = None


class McuEngine:
    """Detection on a microcontroller running the TinyVLM firmware.

    Args:
        link: an :class:`McuLink` or a pyserial URL (then ``baud`` and ``timeout`` apply).
        text_embed: ``list[str] -> float32 [N, D]`` text embeddings (the host's CLIP text tower).
        dims: Matryoshka prefix kept on the MCU (multiple of 4, <= D and <= the MCU's embed dims).
        baud: serial baud rate when ``link`` is a URL.
        timeout: seconds per reply when ``link`` is a URL.
        score_threshold: default cosine threshold for a region to count (overridable per call).
        max_detections: default box limit (1..32).
        fallback: an engine used while the MCU is unreachable; None raises ConnectionError instead.
        text_id: identity of ``text_embed`` (:func:`tinyvlm_ros.mcu.vocab.text_id`); flash vocabulary rows are
            used only when the vocabulary was made by the same embedder (same text id and prefix); 0 never
            uses them.
        host_clock: host time base in ns for device-camera stamps (default ``time.time_ns``; the node passes
            its ROS clock).
        allow_random_model: accept a device whose model has random weights (wiring tests only).
        expect_model_id: refuse a device that runs another model (0: any); the trained model's id, whose text
            projection ``text_embed`` applies.
    """

    name = "mcu"
    #: Ask the device for its per-region score map with each INFER (subclasses that refine boxes do).
    want_scores = False

    def __init__(self, link: Union[McuLink, str], text_embed: TextEmbed, dims: int = 64, *,
                 baud: int = 921600, timeout: float = 2.0, score_threshold: float = 0.25,
                 max_detections: int = 8,
                 fallback: Optional[Engine] = None, text_id: int = 0, host_clock: HostClock = time.time_ns,
                 allow_random_model: bool = False, expect_model_id: int = 0) -> None:
        if dims <= 0 or dims % 4:
            raise ValueError(f"dims must be a positive multiple of 4, got {dims}")
        if not 1 <= max_detections <= 32:
            raise ValueError(f"max_detections must be 1..32, got {max_detections}")
        self.link = link if isinstance(link, McuLink) else McuLink(link, baud=baud, timeout=timeout)
        self.text_embed = text_embed
        self.dims = dims
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.fallback = fallback
        self.text_id = int(text_id)
        self.allow_random_model = allow_random_model
        self.expect_model_id = int(expect_model_id)
        self.clock = ClockSync(host_clock)
        self.degraded = False
        self.last_error = ""
        self._phrases: List[str] = []            # RAM table rows, in order
        self._embeddings: Optional[np.ndarray] = None
        self._loaded: List[str] = []
        self._loaded_table: Optional[int] = None  # table hash the device reported for what we loaded
        self._vocab_key: Optional[tuple] = None   # (vocab hash, rows, dims) the cache below belongs to
        self._vocab_ids: Dict[str, Optional[int]] = {}
        self._vocab_note = ""

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> "McuEngine":
        """Open the link and check the device's model can hold ``dims``."""
        if not self.link.is_open:
            self.link.open()
        info = self.link.info
        if not info.get("model_ok"):
            raise ValueError(f"MCU at {self.link.url} has no valid model")
        if self.expect_model_id and info["model_id"] != self.expect_model_id:
            raise ValueError(f"the MCU at {self.link.url} runs model {info['model_id']:08x}, the trained "
                             f"model is {self.expect_model_id:08x}: load its model.tvm on the device "
                             "(emulator: `tinyvlm mcu emulate --model DIR/model.tvm`)")
        if info.get("model_flags", 0) & pc.ModelFlag.RANDOM_WEIGHTS and not self.allow_random_model:
            raise ValueError(f"the MCU at {self.link.url} runs a model with random weights "
                             f"(model id {info['model_id']:08x}): its boxes mean nothing. Train one with "
                             "`tinyvlm mcu distill`, run it on the device and give its directory as "
                             "mcu_model_dir (allow_random_model / mcu_allow_random_model only for wiring "
                             "tests)")
        limit = min(info["embed_dim"], info["table_max_dims"])
        if self.dims > limit:
            raise ValueError(f"dims {self.dims} exceed what the MCU holds ({limit})")
        return self

    def close(self) -> None:
        """Close the link."""
        self.link.close()

    def __enter__(self) -> "McuEngine":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ rows
    def _vocab_usable(self) -> bool:
        """Tell whether the device's flash vocabulary was made by this engine's embedder at its prefix."""
        info = self.link.info
        why = ""
        if not info.get("vocab_rows"):
            why = "none on the device"
        elif not self.text_id or info.get("vocab_text_id") != self.text_id:
            why = (f"made by another text embedder (text id {info.get('vocab_text_id', 0):08x}, "
                   f"this engine {self.text_id:08x})")
        elif info.get("vocab_dims") != self.dims:
            why = f"keeps {info.get('vocab_dims')} dims, this engine {self.dims}"
        rows = info.get("vocab_rows", 0)
        note = f"{rows} rows, not used: {why}" if why else f"{rows} rows, used"
        if note != self._vocab_note and info.get("vocab_rows"):
            (log.warning if why else log.info)("MCU flash vocabulary: %s", note)
        self._vocab_note = note
        return not why

    def _vocab_rows(self, targets: List[str]) -> Dict[str, Optional[int]]:
        """Flash vocabulary row of each target (None: not there), looked up once per vocabulary."""
        info = self.link.info
        key = (info.get("vocab_hash"), info.get("vocab_rows"), info.get("vocab_dims"))
        if key != self._vocab_key:
            self._vocab_key, self._vocab_ids = key, {}
        if not self._vocab_usable():
            return {t: None for t in targets}
        unknown = [t for t in targets if t not in self._vocab_ids]
        if unknown:
            ids = self.link.vocab_lookup([phrase_hash(t) for t in unknown])
            for t, i in zip(unknown, ids):
                # only flash rows: RAM rows are ours and tracked below
                self._vocab_ids[t] = i if i != pc.ROW_NONE and not i & pc.ROW_RAM else None
        return {t: self._vocab_ids[t] for t in targets}

    def _ensure_rows(self, targets: List[str]) -> List[int]:
        """Row ids for the targets: flash vocabulary rows where it has them, RAM table rows for the rest."""
        in_flash = self._vocab_rows(targets)
        need = [t for t in targets if in_flash[t] is None]
        cap = min(int(self.link.info.get("table_capacity_rows", 256)), 256)
        new = [t for t in need if t not in self._phrases]
        if new:
            emb = np.asarray(self.text_embed(new), dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != len(new) or emb.shape[1] < self.dims:
                raise ValueError(f"text_embed returned shape {emb.shape}, "
                                 f"expected [{len(new)}, >= {self.dims}]")
            if len(self._phrases) + len(new) > cap:  # full: start over with what this command needs
                keep = [t for t in need if t in self._phrases]
                idx = [self._phrases.index(t) for t in keep]
                self._phrases = keep
                self._embeddings = self._embeddings[idx] if self._embeddings is not None and idx else None
            self._phrases += new
            self._embeddings = emb if self._embeddings is None else np.concatenate([self._embeddings, emb])
        if need and (self._loaded != self._phrases
                     or self.link.info.get("table_hash") != self._loaded_table):
            assert self._embeddings is not None
            table = quantize_table(self._embeddings, self.dims, self.link.info["model_id"],
                                   [phrase_hash(p) for p in self._phrases], self.text_id)
            info = self.link.load_table(pack_table(table))
            self._loaded = list(self._phrases)
            self._loaded_table = info["table_hash"]
        return [in_flash[t] if in_flash[t] is not None else ram_row(self._phrases.index(t)) for t in targets]

    # ------------------------------------------------------------------ Engine
    def _phrases_of(self, command: Command, score_threshold: Optional[float],
                    max_detections: Optional[int]) -> Tuple[ParsedCommand, Dict[str, float], int]:
        """Return the parsed command, the threshold of every phrase it needs scored, and the box limit."""
        parsed = parse_targets(command)
        thr = self.score_threshold if score_threshold is None else float(score_threshold)
        limit = self.max_detections if max_detections is None else int(max_detections)
        return parsed, parsed.phrase_thresholds(thr), max(1, min(limit, pc.MAX_BOXES))

    def detect(self, image: np.ndarray, command: Command, *, score_threshold: Optional[float] = None,
               max_detections: Optional[int] = None) -> DetectionResult:
        """Detect the command's targets in an HxWx3 uint8 RGB frame on the MCU (host-camera mode).

        Detection 0 is the chosen target, then the other instances of the target phrases (see
        :class:`tinyvlm_ros.engine.detector.Detector`); ``failure`` says why a command could not be
        grounded in this frame.
        """
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8, got {img.shape} {img.dtype}")
        parsed, thresholds, limit = self._phrases_of(command, score_threshold, max_detections)
        t0 = time.monotonic()
        try:
            if not self.link.is_open:
                self.open()
            rows = self._ensure_rows(list(thresholds))
            result = self._run(img, parsed, thresholds, rows, limit)
        except (ConnectionError, TimeoutError) as exc:
            self._lost(exc)
            if self.fallback is None:
                raise
            log.warning("MCU unreachable (%s); using the fallback engine", exc)
            res = self.fallback.detect(image, parsed, score_threshold=score_threshold,
                                       max_detections=max_detections)
            res.work["mcu_fallback"] = 1
            return res
        self.degraded = False
        self.last_error = ""
        result.timings["mcu"] = time.monotonic() - t0
        return result

    def capture(self, command: Command, *, score_threshold: Optional[float] = None,
                max_detections: Optional[int] = None,
                thumb_div: int = 0) -> Tuple[DetectionResult, CaptureInfo]:
        """Device-camera mode: the MCU captures a frame itself, encodes and scores it, and returns boxes.

        Boxes are in pixels of the device's frame (its model input size), grounded as in :meth:`detect`.
        The capture time comes back on the device clock and is translated into ``host_clock`` time
        (:class:`CaptureInfo`).  At most ``MAX_QUERY_ROWS`` phrases (one frame is scored once).  No
        fallback: without the device there is no frame.

        Args:
            command: the command ("pick the red block") or its target phrases.
            score_threshold: cosine threshold (default: the engine's).
            max_detections: box limit (default: the engine's).
            thumb_div: > 0 also returns a thumbnail of the frame, its size divided by ``thumb_div``.
        """
        parsed, thresholds, limit = self._phrases_of(command, score_threshold, max_detections)
        if len(thresholds) > pc.MAX_QUERY_ROWS:
            raise ValueError(f"device-camera mode scores at most {pc.MAX_QUERY_ROWS} phrases per frame, "
                             f"the command needs {len(thresholds)}")
        t0 = time.monotonic()
        try:
            if not self.link.is_open:
                self.open()
            if not self.link.info.get("camera"):
                raise ValueError(f"the MCU at {self.link.url} reports no camera; use host-camera mode")
            rows = self._ensure_rows(list(thresholds))
            if self.clock.stale(self.link.boot_id):
                self.clock.sync(self.link.clock, self.link.boot_id)
            self.link.set_query(rows, threshold=min(thresholds.values()), max_boxes=pc.MAX_BOXES)
            res = self.link.capture(want_scores=self.want_scores, thumb_div=thumb_div)
            if self.clock.boot_id != self.link.boot_id:
                # the device rebooted during the request: its clock restarted, the stamp needs a new offset
                self.clock.sync(self.link.clock, self.link.boot_id)
        except (ConnectionError, TimeoutError) as exc:
            self._lost(exc)
            raise
        self.degraded = False
        self.last_error = ""
        w, h = self.link.info["input_w"], self.link.info["input_h"]
        result = self._ground(parsed, thresholds, [(0, res)], w, h, limit)
        result.timings["mcu"] = time.monotonic() - t0
        stamp, err = self.clock.to_host(res.capture_us)
        return result, CaptureInfo(res.capture_us, stamp, err, w, h, res.thumbnail)

    def _lost(self, exc: Exception) -> None:
        self.degraded = True
        self.last_error = str(exc)

    def _run(self, img: np.ndarray, parsed: ParsedCommand, thresholds: Dict[str, float], rows: List[int],
             limit: int) -> DetectionResult:
        info = self.link.info
        h, w = img.shape[:2]
        small = resize_input(img, info["input_w"], info["input_h"])
        replies = []
        # the device thresholds all rows of a query alike: ask with the lowest, keep per phrase its own
        device_thr = min(thresholds.values())
        for start in range(0, len(rows), pc.MAX_QUERY_ROWS):  # the device scores up to 16 rows per frame
            self.link.set_query(rows[start:start + pc.MAX_QUERY_ROWS], threshold=device_thr,
                                max_boxes=pc.MAX_BOXES)
            replies.append((start, self.link.infer(small, want_scores=self.want_scores)))
        return self._ground(parsed, thresholds, replies, w, h, limit)

    def _ground(self, parsed: ParsedCommand, thresholds: Dict[str, float],
                replies: Sequence[Tuple[int, InferResult]], w: int, h: int, limit: int) -> DetectionResult:
        """Ground the replies' boxes: pixels of a w x h frame, candidates per phrase, the resolver.

        Each reply comes with the index of its first phrase; a box below its phrase's threshold is dropped.
        """
        phrases = list(thresholds)
        lists: Dict[str, List[Candidate]] = {p: [] for p in phrases}
        for start, res in replies:
            sx, sy = w / res.grid_w, h / res.grid_h
            for b in res.boxes:
                phrase = phrases[start + b["rank"]]
                score = b["score_q15"] / 32768.0
                if score < thresholds[phrase]:
                    continue
                x0, y0, x1, y1 = self._extent(res, b)
                lists[phrase].append(Candidate((x0 * sx, y0 * sy, x1 * sx, y1 * sy), max(0.0, score)))
        grounded = resolve(parsed, lists, (h, w))
        detections = [Detection(label=c.phrase, score=c.candidate.score, box_xyxy=c.candidate.box,
                                target_index=c.target_index, role=c.role) for c in grounded.chosen[:limit]]
        return DetectionResult(detections=detections, targets=parsed.phrases,
                               work=self._work([r for _, r in replies]), failure=grounded.failure)

    def _work(self, results: Sequence[InferResult]) -> Dict[str, int]:
        work: Dict[str, int] = {"mcu_macs": sum(r.macs for r in results),
                                "mcu_ticks": sum(r.ticks for r in results), "mcu_frames": 1}
        kinstr = self.link.info.get("ticks_per_kinstr", 0)
        if kinstr:
            work["mcu_instructions"] = int(work["mcu_ticks"] * 1000 // kinstr)
        return work

    def _extent(self, res, box: Dict[str, int]) -> Tuple[float, float, float, float]:
        """Return a box's (x0, y0, x1, y1) in grid cells; here the device's whole-cell box."""
        return box["x0"], box["y0"], box["x1"], box["y1"]

    def describe(self) -> Dict[str, str]:
        """Backend, device and model identity for diagnostics."""
        info = self.link.info
        d = {"backend": "mcu", "port": self.link.url, "dims": str(self.dims),
             "state": "degraded" if self.degraded else ("ok" if self.link.is_open else "closed")}
        if info:
            fw = info["fw_version"]
            d.update({"firmware": f"{fw >> 16}.{(fw >> 8) & 0xFF}.{fw & 0xFF}",
                      "protocol": str(info["proto_version"]), "model_id": f"{info['model_id']:08x}",
                      "model_hash": f"{info['model_hash']:08x}", "boot_id": f"{info['boot_id']:08x}",
                      "input": f"{info['input_w']}x{info['input_h']}x{info['input_c']}",
                      "grid": f"{info['grid_w']}x{info['grid_h']}", "reboots": str(self.link.reboots),
                      "vocab": self._vocab_note or f"{info.get('vocab_rows', 0)} rows",
                      "camera": "generated scene" if info.get("camera") == pc.Camera.GENERATED else
                      ("yes" if info.get("camera") else "none")})
            if info.get("model_flags", 0) & pc.ModelFlag.RANDOM_WEIGHTS:
                d["model"] = "RANDOM WEIGHTS (wiring tests only)"
        if self.last_error:
            d["last_error"] = self.last_error
        return d
