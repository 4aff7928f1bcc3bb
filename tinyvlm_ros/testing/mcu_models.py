"""A known-answer encoder for the MCU firmware: region embeddings whose right answers are known.

The firmware's built-in model has random weights and a distilled one needs minutes of
training, so tests that must assert *which* box the MCU engine picks (grounding on the MCU
under QEMU) use this hand-built int8 encoder instead.  It runs in the real firmware like any
other blob and computes, per 8x8-pixel region of the 96x96 input, how much of the region each
of the six :data:`~tinyvlm_ros.testing.scenes.COLOURS` covers, written into the known-answer
CLIP feature space (:mod:`tinyvlm_ros.testing.models`: colour features first, then shapes,
"neutral", "other").  So the host's known-answer CLIP text tower gives the table rows, exactly
as a real text tower does for a distilled encoder, and "red block" scores cos ~0.7 on a region
full of red, 0 on the table.  Shapes are not encoded: on this model "red block" and "red ball"
are the same colour query.

Layers (all int8, requantized per channel):

1. conv 4x4 stride 4, 3 -> 36: for each colour c and each rival d (the other colours and the
   table grey) the linear discriminant ``(mu_c - mu_d) . (p - (mu_c + mu_d) / 2)`` of the
   4x4-pixel mean, a saturating ReLU that is full from 40 % of its value at ``mu_c``;
2. conv 1x1, 36 -> 6: per colour, the sum of its six discriminants minus five full ones: an AND
   (positive only where the colour beats every rival);
3. depthwise 2x2 stride 2: mean over the 8x8-pixel region (24x24 -> 12x12 regions);
4. conv 1x1, 6 -> 16: colour coverage into the colour features, a constant "neutral" feature so
   that the table has a direction of its own.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable, List, Union

import numpy as np

from tinyvlm_ros.mcu.blob import Layer, Model, pack_model, quantize_multiplier
from tinyvlm_ros.testing.models import FEATURE_NAMES
from tinyvlm_ros.testing.scenes import COLOURS

#: The table's colour (the middle of the generated table's shading).
TABLE_GREY = (150.0, 150.0, 150.0)
#: A discriminant is full (255) from this fraction of its value at the colour itself.
SATURATE_AT = 0.4
#: The "neutral" feature every region carries (int8 units, colour coverage is 0..127).
NEUTRAL_LEVEL = 20
EMBED_DIM = 16


def _layer(op: str, k: int, stride: int, in_c: int, out_c: int, in_hw: int, weights: np.ndarray,
           bias: np.ndarray, scales: np.ndarray, out_zp: int = -128) -> Layer:
    pairs = [quantize_multiplier(float(s)) for s in scales]
    return Layer(op, k, stride, 0, in_c, out_c, in_hw, in_hw, -128, out_zp, -128, 127,
                 np.asarray(weights, np.int8), np.asarray(bias, np.int32),
                 np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32))


def known_answer_mcu_model(model_id: int = 0) -> Model:
    """Build the colour-coverage encoder (96x96x3 in, 12x12 regions x 16 dims); see the module docstring."""
    colours = [np.array(COLOURS[c], np.float64) for c in COLOURS]
    grey = np.array(TABLE_GREY)
    n = len(colours)
    # layer 1: one discriminant per (colour, rival)
    w1, b1, s1 = [], [], []
    for ci, mu_c in enumerate(colours):
        rivals = [mu for di, mu in enumerate(colours) if di != ci] + [grey]
        for mu_d in rivals:
            diff = mu_c - mu_d
            w = np.round(diff * 127.0 / np.abs(diff).max())
            mid = (mu_c + mu_d) / 2.0
            bias = -16.0 * float(w @ mid)  # the 4x4 taps share the weights
            at_colour = 16.0 * float(w @ mu_c) + bias
            w1.append(np.broadcast_to(w, (4, 4, 3)))
            b1.append(round(bias))
            s1.append(255.0 / (SATURATE_AT * at_colour))
    per = n  # rivals per colour: the other colours and the table
    layers = [_layer("conv", 4, 4, 3, n * per, 96, np.stack(w1), b1, s1)]
    # layer 2: AND of a colour's discriminants
    w2 = np.zeros((n, 1, 1, n * per))
    for ci in range(n):
        w2[ci, 0, 0, ci * per:(ci + 1) * per] = 1
    layers.append(_layer("conv", 1, 1, n * per, n, 24, w2, [-(per - 1) * 255] * n, [1.0] * n))
    # layer 3: mean over each region
    layers.append(_layer("dw", 2, 2, n, n, 24, np.ones((2, 2, n)), [0] * n, [0.25] * n))
    # layer 4: into the known-answer CLIP features
    w4 = np.zeros((EMBED_DIM, 1, 1, n))
    for ci, name in enumerate(COLOURS):
        w4[FEATURE_NAMES.index(name), 0, 0, ci] = 1
    b4 = np.zeros(EMBED_DIM)
    b4[FEATURE_NAMES.index("neutral")] = 2 * NEUTRAL_LEVEL
    layers.append(_layer("conv", 1, 1, n, EMBED_DIM, 12, w4, b4, [0.5] * EMBED_DIM, out_zp=0))
    model = Model(model_id=model_id or zlib.crc32(b"known-answer-mcu-colour"), in_w=96, in_h=96, in_c=3)
    model.layers = layers
    return model


def write_known_answer_mcu_model(path: Union[str, Path]) -> Path:
    """Write the encoder's firmware blob to ``path`` and return it."""
    p = Path(path)
    p.write_bytes(pack_model(known_answer_mcu_model()))
    return p


def known_answer_text_embed(model_dir: Union[str, Path]) -> Callable[[List[str]], np.ndarray]:
    """Phrases -> the known-answer CLIP text tower's embeddings (the MCU table's rows for this encoder)."""
    from tinyvlm_ros.engine.matcher import ClipMatcher
    from tinyvlm_ros.models.manifest import load_manifest

    matcher = ClipMatcher(load_manifest(model_dir).clip, threads=1)

    def embed(phrases: List[str]) -> np.ndarray:
        return matcher.embed_texts([matcher.prompt(p) for p in phrases])

    return embed
