"""Score mask candidates against text with CLIP's ONNX visual and text towers.

* **Mask-aware crops.**  Each candidate's crop is the square around its box
  (10 % margin) with every pixel outside the mask set to CLIP's mean colour,
  which is exactly zero after normalisation, so the neighbours of an object
  do not vote for it; then resized as open_clip's transform resizes
  (:mod:`tinyvlm_ros.engine.preprocess`).
* **One batch per frame.**  All crops of a frame go through the visual tower
  in one call; the embeddings are returned for the caller to cache, so a new
  command on the same frame costs only the text side.
* **Cached text.**  Text embeddings are kept per prompt string.
* **Matryoshka.**  ``matryoshka_dim`` keeps the first d dimensions of both
  towers' embeddings and re-normalises them (for models trained that way).
* **Calibrated scores.**  A raw cosine has no absolute meaning, so "best of
  the masks" would always return something.  Instead each crop's score is the
  softmax probability of the target prompt against a small fixed set of
  generic prompts ("a photo of an object", "... the background", ...), at the
  model's logit scale, with ``negative_margin`` added to the generic logits.
  A crop scores above 0.5 only when the target describes it better than every
  generic description together; for an absent object all crops stay low and
  the detector returns nothing.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from tinyvlm_ros.engine.preprocess import clip_fill, clip_pixel_values, mask_crop
from tinyvlm_ros.engine.segmenter import MaskCandidate, logits_to_frame
from tinyvlm_ros.engine.session import ProviderSpec, open_session
from tinyvlm_ros.engine.tokenizer import ClipTokenizer
from tinyvlm_ros.models.manifest import ClipConfig

#: The prompt each target phrase is wrapped in (CLIP was trained on captions).
TEMPLATE = "a photo of a {}."
#: Generic descriptions a target must beat to count as present.
NEGATIVE_PROMPTS = (
    "a photo of an object.",
    "a photo of the background.",
    "a photo of a table surface.",
    "a photo of something.",
)


class ClipMatcher:
    """CLIP towers, tokenizer and calibration for one model set.

    Args:
        cfg: the ``clip`` part of a loaded model set.
        threads: ONNX Runtime intra-op threads.
        matryoshka_dim: keep only this many leading embedding dimensions (None: all).
        negatives: the generic prompts of the calibration.
        negative_margin: added to the generic prompts' logits (higher = stricter).
        crop_margin: context around the box, as a fraction of its longer side.
        providers: runtimes in order of preference (see :mod:`tinyvlm_ros.engine.session`).
    """

    def __init__(self, cfg: ClipConfig, threads: int = 2, matryoshka_dim: Optional[int] = None,
                 negatives: Sequence[str] = NEGATIVE_PROMPTS, negative_margin: float = 0.0,
                 crop_margin: float = 0.1, providers: ProviderSpec = None):
        if matryoshka_dim is not None and not (0 < int(matryoshka_dim) <= cfg.embed_dim):
            raise ValueError(f"matryoshka_dim must be in 1..{cfg.embed_dim}, got {matryoshka_dim}")
        if not negatives:
            raise ValueError("the calibration needs at least one generic negative prompt")
        self.cfg = cfg
        self.visual = open_session(cfg.visual, ["pixel_values"], ["image_embeds"], threads, providers)
        self.text = open_session(cfg.text, ["input_ids"], ["text_embeds"], threads, providers)
        self.tokenizer = ClipTokenizer(cfg.tokenizer, cfg.context_length)
        self.dim = int(matryoshka_dim) if matryoshka_dim is not None else cfg.embed_dim
        self.negatives = tuple(negatives)
        self.negative_margin = float(negative_margin)
        self.crop_margin = float(crop_margin)
        self._fill = clip_fill(cfg.mean)
        self._text_cache: Dict[str, np.ndarray] = {}
        self.text_calls = 0

    def sessions(self) -> Dict[str, object]:
        """Return the open graphs by role (for logging which runtime runs each)."""
        return {"clip_visual": self.visual, "clip_text": self.text}

    # -- helpers --------------------------------------------------------------------------------
    def _normalise(self, emb: np.ndarray) -> np.ndarray:
        """Truncate to the Matryoshka prefix, then L2-normalise rows; float32 [N, dim]."""
        e = np.asarray(emb, np.float32)[:, :self.dim]
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def crop(self, image: np.ndarray, cand: MaskCandidate, scale: float) -> np.ndarray:
        """Mask-aware crop of one candidate: uint8 [R, R, 3] RGB, background = CLIP mean colour.

        The crop is resized as open_clip's transform resizes, then the mask, sampled from the
        candidate's low-res logits at the crop's resolution, sets the background
        (see :func:`tinyvlm_ros.engine.preprocess.mask_crop`).

        Args:
            image: HxWx3 uint8 frame the candidate was made on.
            cand: the candidate (box in frame pixels, low-res logits).
            scale: the segmentation's S-frame scale (for the logits).
        """
        def inside(region, size):
            x0, y0, side = region
            return logits_to_frame(cand.logits, scale, (x0, y0, side, side), (size, size)) > 0

        return mask_crop(image, cand.box, self.cfg.image_size, self._fill, inside, self.crop_margin)

    def crop_region(self, image: np.ndarray, box, mask: Optional[np.ndarray] = None) -> np.ndarray:
        """Crop of a box (a tracked object), masked like :meth:`crop` when an HxW bool ``mask`` is given."""
        return mask_crop(image, box, self.cfg.image_size, self._fill, mask, self.crop_margin)

    def to_pixel_values(self, crops: np.ndarray) -> np.ndarray:
        """Uint8 [N, R, R, 3] RGB -> float32 [N, 3, R, R] CLIP-normalised (as open_clip's transform)."""
        return clip_pixel_values(crops, self.cfg.mean, self.cfg.std)

    # -- towers ---------------------------------------------------------------------------------
    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """All crops of a frame in one visual-tower call.

        Args:
            crops: uint8 [N, R, R, 3] RGB.

        Returns:
            float32 [N, dim] unit-norm embeddings ([0, dim] when N is 0).
        """
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        emb = self.visual.run(["image_embeds"], {"pixel_values": self.to_pixel_values(crops)})[0]
        return self._normalise(emb)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm text embeddings float32 [T, dim]; each string is computed once per matcher."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            ids = self.tokenizer(missing)
            emb = self.text.run(["text_embeds"], {"input_ids": ids})[0]
            self.text_calls += len(missing)
            for t, e in zip(missing, self._normalise(emb)):
                self._text_cache[t] = e
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._text_cache[t] for t in texts])

    def prompt(self, phrase: str) -> str:
        """Wrap a target phrase in the caption template."""
        return TEMPLATE.format(phrase)

    def scores(self, crop_emb: np.ndarray, phrase: str) -> np.ndarray:
        """Calibrated probability that each crop shows ``phrase``.

        Args:
            crop_emb: float32 [N, dim] from :meth:`embed_crops`.
            phrase: target phrase ("red block").

        Returns:
            float32 [N] in [0, 1]: softmax of the target prompt against the
            generic prompts (see the module docstring).
        """
        if len(crop_emb) == 0:
            return np.zeros((0,), np.float32)
        text = self.embed_texts([self.prompt(phrase)] + list(self.negatives))
        logits = self.cfg.logit_scale * (crop_emb @ text.T)  # [N, 1 + K]
        logits[:, 1:] += self.negative_margin  # in logit units
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p[:, 0] / p.sum(axis=1)).astype(np.float32)

    def raw_similarity(self, crop_emb: np.ndarray, phrases: List[str]) -> np.ndarray:
        """Plain cosine similarities float32 [N, len(phrases)] (for diagnostics and ranking ties)."""
        text = self.embed_texts([self.prompt(p) for p in phrases])
        return crop_emb @ text.T
