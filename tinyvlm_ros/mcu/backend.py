"""The microcontroller engine: :class:`McuEngine` implements :class:`tinyvlm_ros.types.Engine`.

Text never runs on the MCU.  The host embeds each target phrase (``text_embed``,
e.g. the CLIP text tower), keeps a Matryoshka prefix of ``dims``, quantizes it to
int8 with a per-row scale and loads the rows into the MCU's table; each frame is
resized to the MCU's input size, sent, and the boxes that come back in grid cells
are mapped to pixels of the original frame.

Grounding: the MCU scores every phrase the command needs (targets, reference
objects, excluded objects; up to 16 table rows per INFER) in one frame, and the
boxes per phrase go through the same resolver as the host engine
(:mod:`tinyvlm_ros.grounding.resolve`), so qualifiers, ordinals, counts,
relations and exclusions mean the same on both engines.  What the coarse grid
changes is written in docs/commands.md ("Engines").
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tinyvlm_ros.grounding import ParsedCommand, parse_targets
from tinyvlm_ros.grounding.resolve import Candidate, resolve
from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu.blob import table_from_embeddings
from tinyvlm_ros.mcu.link import McuLink
from tinyvlm_ros.types import Detection, DetectionResult, Engine

log = logging.getLogger(__name__)

TextEmbed = Callable[[List[str]], np.ndarray]


def hash_text_embed(phrases: List[str], dim: int = 128) -> np.ndarray:
    """Deterministic pseudo-random unit embeddings per phrase: a stand-in when no text tower is plugged in.

    Not semantic: useful for wiring, tests and random-weight firmware only.
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
    """

    name = "mcu"
    #: Ask the device for its per-region score map with each INFER (subclasses that refine boxes do).
    want_scores = False

    def __init__(self, link: Union[McuLink, str], text_embed: TextEmbed, dims: int = 64, *,
                 baud: int = 921600, timeout: float = 2.0, score_threshold: float = 0.25,
                 max_detections: int = 8,
                 fallback: Optional[Engine] = None) -> None:
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
        self.degraded = False
        self.last_error = ""
        self._phrases: List[str] = []
        self._embeddings: Optional[np.ndarray] = None
        self._loaded: List[str] = []

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> "McuEngine":
        """Open the link and check the device's model can hold ``dims``."""
        if not self.link.is_open:
            self.link.open()
        info = self.link.info
        if not info.get("model_ok"):
            raise ValueError(f"MCU at {self.link.url} has no valid model")
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

    # ------------------------------------------------------------------ table
    def _ensure_rows(self, targets: List[str]) -> List[int]:
        """Make sure every target has a table row on the device; return their row indices."""
        cap = min(int(self.link.info.get("table_capacity_rows", 256)), 256)
        new = [t for t in targets if t not in self._phrases]
        if new:
            emb = np.asarray(self.text_embed(new), dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != len(new) or emb.shape[1] < self.dims:
                raise ValueError(f"text_embed returned shape {emb.shape}, "
                                 f"expected [{len(new)}, >= {self.dims}]")
            if len(self._phrases) + len(new) > cap:  # full: start over with what this command needs
                keep = [t for t in targets if t in self._phrases]
                idx = [self._phrases.index(t) for t in keep]
                self._phrases = keep
                self._embeddings = self._embeddings[idx] if self._embeddings is not None and idx else None
            self._phrases += new
            self._embeddings = emb if self._embeddings is None else np.concatenate([self._embeddings, emb])
        if self._loaded != self._phrases and self._embeddings is not None:
            blob = table_from_embeddings(self._embeddings, self.dims, self.link.info["model_id"])
            self.link.load_table(blob)
            self._loaded = list(self._phrases)
        return [self._phrases.index(t) for t in targets]

    # ------------------------------------------------------------------ Engine
    def detect(self, image: np.ndarray, command: Union[str, Sequence[str], ParsedCommand], *,
               score_threshold: Optional[float] = None,
               max_detections: Optional[int] = None) -> DetectionResult:
        """Detect the command's targets in an HxWx3 uint8 RGB frame on the MCU.

        Detection 0 is the chosen target, then the other instances of the target phrases (see
        :class:`tinyvlm_ros.engine.detector.Detector`); ``failure`` says why a command could not be
        grounded in this frame.
        """
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8, got {img.shape} {img.dtype}")
        parsed = parse_targets(command)
        thr = self.score_threshold if score_threshold is None else float(score_threshold)
        limit = self.max_detections if max_detections is None else int(max_detections)
        limit = max(1, min(limit, 32))
        t0 = time.monotonic()
        try:
            if not self.link.is_open:
                self.open()
            thresholds = parsed.phrase_thresholds(thr)
            rows = self._ensure_rows(list(thresholds))
            result = self._run(img, parsed, thresholds, rows, limit)
        except (ConnectionError, TimeoutError) as exc:
            self.degraded = True
            self.last_error = str(exc)
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

    def _run(self, img: np.ndarray, parsed: ParsedCommand, thresholds: Dict[str, float], rows: List[int],
             limit: int) -> DetectionResult:
        info = self.link.info
        h, w = img.shape[:2]
        small = resize_input(img, info["input_w"], info["input_h"])
        phrases = list(thresholds)
        lists: Dict[str, List[Candidate]] = {p: [] for p in phrases}
        macs = ticks = 0
        # the device thresholds all rows of a query alike: ask with the lowest, keep per phrase its own
        device_thr = min(thresholds.values())
        for start in range(0, len(rows), 16):  # the device scores up to 16 query rows per frame
            chunk = rows[start:start + 16]
            self.link.set_query(chunk, threshold=device_thr, max_boxes=pc.MAX_BOXES)
            res = self.link.infer(small, want_scores=self.want_scores)
            macs += res.macs
            ticks += res.ticks
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
        work: Dict[str, int] = {"mcu_macs": macs, "mcu_ticks": ticks, "mcu_frames": 1}
        kinstr = info.get("ticks_per_kinstr", 0)
        if kinstr:
            work["mcu_instructions"] = int(ticks * 1000 // kinstr)
        return DetectionResult(detections=detections, targets=parsed.phrases, work=work,
                               failure=grounded.failure)

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
                      "grid": f"{info['grid_w']}x{info['grid_h']}", "reboots": str(self.link.reboots)})
        if self.last_error:
            d["last_error"] = self.last_error
        return d
