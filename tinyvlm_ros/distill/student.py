"""The float (torch) twin of the firmware's region encoder, used only for training.

:class:`Student` has exactly the layers of :data:`tinyvlm_ros.mcu.random_model.DEFAULT_ARCH`
(or any architecture of the same form): plain ``conv``/``dw`` layers with bias, zero
padding ``(k - 1) // 2``, ReLU on all but the last layer.  No batch norm or other
op the firmware lacks, so its weights map one to one onto the int8 blob
(:mod:`tinyvlm_ros.distill.quantize`).  The input is ``pixel / 255`` (the firmware's
input scale 1/255 with zero point -128 is the same real value).

Torch is imported here and in :mod:`tinyvlm_ros.distill.train` only; the runtime never
imports either module.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from tinyvlm_ros.mcu.spec import DEFAULT_ARCH, DEFAULT_INPUT

Arch = Sequence[Tuple[str, int, int, int, bool]]


class Student(nn.Module):
    """Region encoder: float [B, 3, H, W] in [0, 1] -> embeddings [B, embed_dim, grid_h, grid_w].

    Args:
        arch: ``(op, k, stride, out_c, relu)`` per layer, as ``export.DEFAULT_ARCH``.
        in_c: input channels.
    """

    def __init__(self, arch: Arch = DEFAULT_ARCH, in_c: int = DEFAULT_INPUT[2]) -> None:
        super().__init__()
        self.arch = [tuple(a) for a in arch]
        if not self.arch:
            raise ValueError("architecture has no layers")
        if self.arch[-1][4]:
            raise ValueError("the last layer (the embedding) must be linear: the scorer needs signed values")
        layers: List[nn.Conv2d] = []
        c = in_c
        for i, (op, k, stride, out_c, _relu) in enumerate(self.arch):
            if op not in ("conv", "dw"):
                raise ValueError(f"layer {i}: op must be conv or dw, got {op!r}")
            if op == "dw" and out_c != c:
                raise ValueError(f"layer {i}: depthwise keeps channels ({c}), got out_c {out_c}")
            groups = c if op == "dw" else 1
            layers.append(nn.Conv2d(c, out_c, k, stride, padding=(k - 1) // 2, groups=groups, bias=True))
            c = out_c
        self.layers = nn.ModuleList(layers)
        self.embed_dim = c
        self._init()

    def _init(self) -> None:
        # He init keeps ReLU activations from vanishing through 8 thin layers
        for conv, (_op, _k, _s, _c, relu) in zip(self.layers, self.arch):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu" if relu else "linear")
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, upto: int = -1) -> torch.Tensor:
        """Run the layers (all, or the first ``upto``) on a [B, C, H, W] float batch in [0, 1]."""
        n = len(self.layers) if upto < 0 else upto
        for conv, (_op, _k, _s, _c, relu) in zip(self.layers[:n], self.arch[:n]):
            x = conv(x)
            if relu:
                x = torch.relu(x)
        return x

    def numpy_layers(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Return (weight, bias) per layer in blob order (float64): conv [out, k, k, in], dw [k, k, c]."""
        out = []
        for conv, (op, _k, _s, _c, _r) in zip(self.layers, self.arch):
            w = conv.weight.detach().cpu().double().numpy()  # [out, in/groups, k, k]
            if op == "conv":
                w = w.transpose(0, 2, 3, 1)
            else:
                w = w[:, 0].transpose(1, 2, 0)
            out.append((np.ascontiguousarray(w), conv.bias.detach().cpu().double().numpy()))
        return out


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """Uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1] (the firmware's real input values)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return x.permute(0, 3, 1, 2).contiguous()


class TextProjection(nn.Module):
    """Linear map from the teacher's embedding space into the student's Matryoshka space (no bias).

    Applied to the teacher's text embeddings at run time (numpy, ``x @ weight``) and to the
    teacher's image embeddings during training, so both sides meet in one prefix space.
    """

    def __init__(self, teacher_dim: int, embed_dim: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        # near-orthogonal start: the first teacher dims spread over all prefixes
        w = torch.randn(teacher_dim, embed_dim, generator=g) / np.sqrt(teacher_dim)
        self.weight = nn.Parameter(w)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Project [..., teacher_dim] -> [..., embed_dim]."""
        return t @ self.weight


def student_embeddings(student, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Float region embeddings [N, gh, gw, E] of uint8 [N, H, W, 3] frames."""
    import torch

    from tinyvlm_ros.distill.student import images_to_tensor

    outs = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            outs.append(student(images_to_tensor(images[i:i + batch])).permute(0, 2, 3, 1).numpy())
    return np.concatenate(outs).astype(np.float32)
