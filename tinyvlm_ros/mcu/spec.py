"""Facts about the MCU encoder that the runtime and the training code share (one home, no cycle).

The firmware runs whatever architecture the model blob describes; these are the defaults the
training code builds and the runtime assumes when it turns region scores into boxes.
"""

from __future__ import annotations

from typing import Tuple

#: (op, k, stride, out_c, relu) per layer; input 96x96x3 -> 12x12 regions x 128 dims.
DEFAULT_ARCH: Tuple[Tuple[str, int, int, int, bool], ...] = (
    ("conv", 3, 2, 16, True),   # 48x48x16
    ("dw", 3, 2, 16, True),     # 24x24x16
    ("conv", 1, 1, 32, True),
    ("dw", 3, 2, 32, True),     # 12x12x32
    ("conv", 1, 1, 64, True),
    ("dw", 3, 1, 64, True),
    ("conv", 1, 1, 96, True),
    ("conv", 1, 1, 128, False),  # region embeddings, symmetric int8
)
DEFAULT_INPUT = (96, 96, 3)  # width, height, channels

#: Score -> coverage, as the distillation's detection term defines it (tinyvlm_ros.distill.objective).
COVER_BIAS = 0.5
COVER_TEMP = 0.05
#: The detection term's positive weight (8) makes the trained sigmoid s = 8c / (1 + 7c) for coverage c;
#: refine_box inverts that (c = s / (w - (w - 1) s)); distill.json stores the value calibrated per prefix.
COVER_WEIGHT = 8.0
