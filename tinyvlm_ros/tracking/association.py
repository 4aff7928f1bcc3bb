"""Which new keyframe detection is which existing track.

Detections of a keyframe at stamp S are compared with every track *as it was
at S* (its box history, or its prediction when it was lost then): a track
held at S must overlap the detection (IoU) and look alike (colour
histogram); a lost track is re-found by a detection near where it was heading
that looks like it.  Only the same target phrase can match.  Pairs are taken
best score first, each detection and track at most once: with the handful of
objects a command names, greedy assignment equals the optimal one in
practice and needs no solver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.tracking.appearance import Appearance, similarity
from tinyvlm_ros.tracking.track import Track
from tinyvlm_ros.types import Detection


@dataclass
class AssociationConfig:
    """Gates and weights of :func:`associate`.

    Attributes:
        min_iou: a held track and a detection must overlap at least this much.
        min_appearance: ... and look at least this alike (histogram similarity, 0..1).
        lost_min_appearance: a lost track is re-found only by a detection at least this alike.
        lost_gate: a lost track is re-found within this many box diagonals of its prediction.
        max_coast_s: how long a lost track's prediction keeps moving at its last velocity.
        iou_weight: weight of overlap against appearance in the score of a held track.
    """

    min_iou: float = 0.2
    min_appearance: float = 0.3
    lost_min_appearance: float = 0.6
    lost_gate: float = 1.5
    max_coast_s: float = 0.3
    iou_weight: float = 0.6


@dataclass
class Match:
    detection: int
    track_id: int
    score: float
    was_lost: bool


def pair_score(det: Detection, det_app: Optional[Appearance], track: Track, stamp_ns: int,
               cfg: AssociationConfig) -> Optional[Tuple[float, bool]]:
    """Score in (0, 1] of detection ``det`` (found at ``stamp_ns``) being ``track``; None outside the gates.

    Returns (score, the track was lost at that stamp).
    """
    if det.label != track.label:
        return None
    box, held = track.box_at(stamp_ns, cfg.max_coast_s)
    app = similarity(det_app, track.appearance)
    if held:
        iou = box_iou(det.box_xyxy, box)
        if iou < cfg.min_iou or app < cfg.min_appearance:
            return None
        return cfg.iou_weight * iou + (1.0 - cfg.iou_weight) * app, False
    diag = float(np.hypot(box[2] - box[0], box[3] - box[1]))
    dx = (box[0] + box[2]) / 2.0 - det.center[0]
    dy = (box[1] + box[3]) / 2.0 - det.center[1]
    d = float(np.hypot(dx, dy))
    if diag <= 0 or d > cfg.lost_gate * diag or app < cfg.lost_min_appearance:
        return None
    # below any held pair of the same quality: a visible track has the stronger claim
    return 0.9 * (0.5 * (1.0 - d / (cfg.lost_gate * diag)) + 0.5 * app), True


def associate(detections: Sequence[Detection], apps: Sequence[Optional[Appearance]], tracks: Sequence[Track],
              stamp_ns: int, cfg: Optional[AssociationConfig] = None
              ) -> Tuple[List[Match], List[int], List[int]]:
    """Match keyframe detections to tracks.

    Args:
        detections: the engine's detections for the keyframe.
        apps: each detection's appearance (same order; None when it could not be measured).
        tracks: the live tracks (held and lost).
        stamp_ns: the keyframe's stamp.

    Returns:
        (matches, indices of unmatched detections, ids of unmatched tracks).
    """
    cfg = cfg or AssociationConfig()
    if len(apps) != len(detections):
        raise ValueError(f"need one appearance per detection, got {len(apps)} for {len(detections)}")
    pairs: List[Tuple[float, int, int, bool]] = []
    for i, det in enumerate(detections):
        for j, tr in enumerate(tracks):
            got = pair_score(det, apps[i], tr, stamp_ns, cfg)
            if got is not None:
                pairs.append((got[0], i, j, got[1]))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_d: Dict[int, bool] = {}
    used_t: Dict[int, bool] = {}
    matches: List[Match] = []
    for score, i, j, lost in pairs:
        if i in used_d or j in used_t:
            continue
        used_d[i] = used_t[j] = True
        matches.append(Match(detection=i, track_id=tracks[j].id, score=score, was_lost=lost))
    unmatched_d = [i for i in range(len(detections)) if i not in used_d]
    unmatched_t = [tr.id for j, tr in enumerate(tracks) if j not in used_t]
    return matches, unmatched_d, unmatched_t
