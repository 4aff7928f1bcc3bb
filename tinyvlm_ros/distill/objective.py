"""The distillation objective and the prefix metrics used by training and quantization.

The detection term trains a region's sigmoid score ``sigmoid((cos - COVER_BIAS) / COVER_TEMP)`` to
the fraction of the region an object covers, with positive weight ``COVER_WEIGHT``; the runtime
(:mod:`tinyvlm_ros.mcu.trained_model`) inverts that mapping, so the constants live in
:mod:`tinyvlm_ros.mcu.spec`.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from tinyvlm_ros.mcu.spec import COVER_BIAS, COVER_TEMP, COVER_WEIGHT

KL_TEACHER_TEMP = 0.02
#: The student's temperature is the runtime's coverage temperature.
KL_STUDENT_TEMP = COVER_TEMP


# ---------------------------------------------------------------------------------------------- loss
def matryoshka_loss(student_out, targets, cover, text, proj, dims: Sequence[int]):
    """Total loss and per-prefix parts.

    Args:
        student_out: torch float [B, E, gh, gw] region embeddings.
        targets: torch float [B, gh, gw, D] unit teacher region embeddings.
        cover: torch float [B, gh, gw] object coverage of each region.
        text: torch float [K, D] unit teacher text embeddings of the label phrases.
        proj: the :class:`TextProjection`.
        dims: prefix lengths.

    Returns:
        (loss tensor, {"cos@m": mean student-target cosine, ...}).
    """
    import torch
    import torch.nn.functional as F

    s = student_out.permute(0, 2, 3, 1).reshape(-1, student_out.shape[1])
    t = targets.reshape(-1, targets.shape[-1])
    w = 1.0 + 4.0 * cover.reshape(-1)
    obj = cover.reshape(-1) >= 0.25
    pt = proj(t)
    ptext = proj(text)
    t_logits = (t @ text.T) / KL_TEACHER_TEMP
    # detection term: the probability that a region shows the teacher's top label is the fraction
    # of it the objects cover (0 for every other label), so score maps trace objects sub-cell
    cov = cover.reshape(-1)
    y = F.one_hot(t_logits.argmax(dim=1), text.shape[0]).float() * cov[:, None]
    pos_w = torch.full((text.shape[0],), COVER_WEIGHT)  # one positive label against many negatives and table
    # structure anchor: teacher texts + a sample of region targets, cosines before and after P
    idx = torch.randperm(t.shape[0])[:64]
    anchor = torch.cat([text, t[idx]], dim=0)
    anchor_cos = anchor @ anchor.T
    panchor = proj(anchor)
    total = student_out.new_zeros(())
    parts: Dict[str, float] = {}
    for m in dims:
        sm = F.normalize(s[:, :m], dim=1)
        gm = F.normalize(pt[:, :m], dim=1)
        cos = (sm * gm).sum(dim=1)
        l_cos = ((1.0 - cos) * w).sum() / w.sum()
        l_kl = s.new_zeros(())
        tm = F.normalize(ptext[:, :m], dim=1)
        if bool(obj.any()):
            s_logits = (sm[obj] @ tm.T) / KL_STUDENT_TEMP
            l_kl = F.kl_div(F.log_softmax(s_logits, dim=1), F.log_softmax(t_logits[obj], dim=1),
                            log_target=True, reduction="batchmean")
        all_logits = (sm @ tm.T - COVER_BIAS) / KL_STUDENT_TEMP
        bce = F.binary_cross_entropy_with_logits(all_logits, y, reduction="none", pos_weight=pos_w)
        l_det = bce.mean() * text.shape[0] / 4.0
        am = F.normalize(panchor[:, :m], dim=1)
        l_struct = ((am @ am.T - anchor_cos) ** 2).mean()
        total = total + l_cos + 0.5 * l_kl + l_struct + l_det
        parts[f"cos@{m}"] = float(cos.mean().detach())
        parts[f"kl@{m}"] = float(l_kl.detach())
    parts["loss"] = float(total.detach())
    return total, parts


# ---------------------------------------------------------------------------------------------- eval
def prefix_scores(emb: np.ndarray, text_rows: np.ndarray, m: int) -> np.ndarray:
    """Cosines [N_regions, K] of region embeddings [..., E] and text rows [K, E] at prefix m."""
    e = np.asarray(emb, np.float64).reshape(-1, emb.shape[-1])[:, :m]
    t = np.asarray(text_rows, np.float64)[:, :m]
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return e @ t.T


def region_accuracy(emb: np.ndarray, text_rows: np.ndarray, label: np.ndarray, m: int) -> float:
    """Top-1 accuracy over the label phrases of regions that an object covers at least half of."""
    lab = np.asarray(label).reshape(-1)
    keep = lab >= 0
    if not keep.any():
        return float("nan")
    sc = prefix_scores(np.asarray(emb).reshape(-1, emb.shape[-1])[keep], text_rows, m)
    return float(np.mean(np.argmax(sc, axis=1) == lab[keep]))
