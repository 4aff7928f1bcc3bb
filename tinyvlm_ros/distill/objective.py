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

#: Temperature of the teacher's region-to-region affinities (relational term).
REL_TEACHER_TEMP = 0.05
#: The student's temperature is the runtime's coverage temperature.
REL_STUDENT_TEMP = COVER_TEMP
#: Regions per batch in the relational term (object regions first).
REL_REGIONS = 256


# ---------------------------------------------------------------------------------------------- loss
def matryoshka_loss(student_out, targets, cover, text, proj, dims: Sequence[int], phrase_cover=None):
    """Total loss and per-prefix parts: the embedding space is transferred, not a label list.

    Per prefix m (both sides cut to m dims and re-normalised):

    * ``cos``: ``1 - cos(student_m, (P t)_m)`` per region, object regions weigh more;
    * ``rel`` (contrastive): each object region's softmax over the batch's projected teacher
      region embeddings must match the teacher's own region-to-region softmax, so the student
      ranks regions as the teacher does, including objects no phrase names;
    * ``det``: a logistic loss on ``(cos(student_m, (P text)_m) - COVER_BIAS) / COVER_TEMP`` towards the
      fraction of the region that objects of each *seen* phrase cover (``phrase_cover``), which
      calibrates scores to coverage for the runtime's box refinement;
    * ``struct``: cosines of projected teacher embeddings (texts, a sample of region targets) equal
      the teacher's, so P cannot collapse the space.

    Args:
        student_out: torch float [B, E, gh, gw] region embeddings.
        targets: torch float [B, gh, gw, D] unit teacher region embeddings.
        cover: torch float [B, gh, gw] object coverage of each region.
        text: torch float [K, D] unit teacher text embeddings of the seen phrases.
        proj: the :class:`TextProjection`.
        dims: prefix lengths.
        phrase_cover: torch float [B, gh, gw, K] coverage per seen phrase (None: no detection term).

    Returns:
        (loss tensor, {"cos@m": mean student-target cosine, ...}).
    """
    import torch
    import torch.nn.functional as F

    s = student_out.permute(0, 2, 3, 1).reshape(-1, student_out.shape[1])
    t = targets.reshape(-1, targets.shape[-1])
    cov = cover.reshape(-1)
    w = 1.0 + 4.0 * cov
    pt = proj(t)
    ptext = proj(text)
    # relational term: object regions (most covered first), against every region of the sample
    order = torch.argsort(cov, descending=True)[:REL_REGIONS]
    rel = order[cov[order] >= 0.25]
    t_aff = (t[rel] @ t[order].T) / REL_TEACHER_TEMP
    y = None
    if phrase_cover is not None:
        y = phrase_cover.reshape(-1, phrase_cover.shape[-1]).float()
    pos_w = torch.full((text.shape[0],), COVER_WEIGHT)  # one positive phrase against many negatives and table
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
        l_rel = s.new_zeros(())
        if len(rel) > 1:
            s_aff = (sm[rel] @ gm[order].T) / REL_STUDENT_TEMP
            l_rel = F.kl_div(F.log_softmax(s_aff, dim=1), F.log_softmax(t_aff, dim=1), log_target=True,
                             reduction="batchmean")
        l_det = s.new_zeros(())
        if y is not None:
            tm = F.normalize(ptext[:, :m], dim=1)
            logits = (sm @ tm.T - COVER_BIAS) / REL_STUDENT_TEMP
            bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none", pos_weight=pos_w)
            l_det = bce.mean() * text.shape[0] / 4.0
        am = F.normalize(panchor[:, :m], dim=1)
        l_struct = ((am @ am.T - anchor_cos) ** 2).mean()
        total = total + l_cos + 0.5 * l_rel + l_struct + l_det
        parts[f"cos@{m}"] = float(cos.mean().detach())
        parts[f"rel@{m}"] = float(l_rel.detach())
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
