"""Write ROS 2 bags of generated scenes whose right answers are known.

:func:`make_bag`: every frame is a new scene holding a "red block" plus a few
other objects, so the standing command "pick the red block" always has
exactly one right answer, recorded on the ground-truth topic with the image's
stamp.

:func:`make_sequence_bag`: one of the generated moving sequences
(:mod:`tinyvlm_ros.testing.sequences`) for the tracking benchmark; its ground
truth carries each object's identity in ``Detection2D.id`` (``"0/<identity>"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from tinyvlm_ros.testing import scenes, sequences
from tinyvlm_ros.bench import bagio
from tinyvlm_ros.types import Detection

#: Stamp of the first frame: a fixed time so the same arguments give the same bag.
START_NS = 1_700_000_000 * 1_000_000_000
DEFAULT_COMMAND = "pick the red block"
TARGET = "red block"


def _labels(rng: np.random.Generator, n_others: int) -> List[str]:
    others = [f"{c} {s}" for c in scenes.COLOURS for s in scenes.SHAPES if f"{c} {s}" != TARGET]
    pick = rng.choice(len(others), size=n_others, replace=False)
    labels = [TARGET] + [others[i] for i in pick]
    rng.shuffle(labels)
    return labels


def make_bag(out: Path, *, storage: str = "mcap", compressed: bool = False, frames: int = 30,
             rate: float = 10.0, seed: int = 0, command: str = DEFAULT_COMMAND, width: int = 640,
             height: int = 480, n_objects: int = 3, encoding: str = "rgb8",
             progress: Optional[Callable[[int], None]] = None) -> Path:
    """Write a bag of ``frames`` generated scenes and return its path.

    Topics: ``/camera/image_raw`` (sensor_msgs/Image, ``encoding``) or
    ``/camera/image_raw/compressed`` (sensor_msgs/CompressedImage, jpeg),
    ``/command`` (std_msgs/String, once before the first frame) and
    ``/ground_truth`` (vision_msgs/Detection2DArray of every object, score 1,
    same header as the image).  Frame ``i`` is stamped ``START_NS + i / rate``
    and logged at the same time.
    """
    if frames < 1:
        raise ValueError(f"--frames must be at least 1, got {frames}")
    if not rate > 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    if n_objects < 1:
        raise ValueError(f"need at least one object per scene, got {n_objects}")
    store = bagio.typestore()
    image_topic = bagio.TOPIC_IMAGE_COMPRESSED if compressed else bagio.TOPIC_IMAGE
    rng = np.random.default_rng(seed)
    period_ns = int(round(1e9 / rate))
    with bagio.BagWriter(Path(out), storage=storage, store=store) as bag:
        bag.add_topic(bagio.TOPIC_COMMAND, bagio.STRING)
        bag.add_topic(image_topic, bagio.COMPRESSED_IMAGE if compressed else bagio.IMAGE)
        bag.add_topic(bagio.TOPIC_GROUND_TRUTH, bagio.DETECTION2D_ARRAY)
        # The command goes just before the first frame so a replay sets it first.
        bag.write(bagio.TOPIC_COMMAND, START_NS - 1_000_000, store.types[bagio.STRING](data=command))
        for i in range(frames):
            t_ns = START_NS + i * period_ns
            scene = scenes.make_scene(seed=seed * 1_000_003 + i, width=width, height=height,
                                      labels=_labels(rng, n_objects - 1))
            header = bagio.make_header(store, t_ns, "camera")
            truth = [Detection(label=o.label, score=1.0, box_xyxy=tuple(float(v) for v in o.box_xyxy))
                     for o in scene.objects]
            bag.write(bagio.TOPIC_GROUND_TRUTH, t_ns, bagio.detections_to_msg(store, header, truth))
            if compressed:
                msg = bagio.rgb_to_compressed(store, scene.image, header)
            else:
                msg = bagio.rgb_to_image(store, scene.image, header, encoding)
            bag.write(image_topic, t_ns, msg)
            if progress:
                progress(i + 1)
    return Path(out)


def make_sequence_bag(out: Path, name: str, *, storage: str = "mcap", compressed: bool = False,
                      frames: Optional[int] = None, encoding: str = "rgb8",
                      progress: Optional[Callable[[int], None]] = None) -> Path:
    """Write the named moving sequence (640x480, 30 Hz: the spec's own size and rate) as a bag.

    Topics as :func:`make_bag`, with the sequence's command on ``/command``; ``/ground_truth`` holds
    every visible object (the sequences' visibility rule) with ``Detection2D.id`` ``"0/<identity>"``,
    so a tracking run can score identities.  ``frames`` cuts the sequence short.
    """
    spec = sequences.sequence(name)
    if frames is not None and frames < 1:
        raise ValueError(f"--frames must be at least 1, got {frames}")
    store = bagio.typestore()
    image_topic = bagio.TOPIC_IMAGE_COMPRESSED if compressed else bagio.TOPIC_IMAGE
    with bagio.BagWriter(Path(out), storage=storage, store=store) as bag:
        bag.add_topic(bagio.TOPIC_COMMAND, bagio.STRING)
        bag.add_topic(image_topic, bagio.COMPRESSED_IMAGE if compressed else bagio.IMAGE)
        bag.add_topic(bagio.TOPIC_GROUND_TRUTH, bagio.DETECTION2D_ARRAY)
        bag.write(bagio.TOPIC_COMMAND, spec.stamp_ns(0) - 1_000_000,
                  store.types[bagio.STRING](data=spec.command))
        for f in sequences.render(spec, stop=frames):
            header = bagio.make_header(store, f.stamp_ns, "camera")
            truth = [Detection(label=o.label, score=1.0, box_xyxy=tuple(float(v) for v in o.box_xyxy),
                               track_id=o.identity) for o in f.truth]
            bag.write(bagio.TOPIC_GROUND_TRUTH, f.stamp_ns, bagio.detections_to_msg(store, header, truth))
            if compressed:
                msg = bagio.rgb_to_compressed(store, f.image, header)
            else:
                msg = bagio.rgb_to_image(store, f.image, header, encoding)
            bag.write(image_topic, f.stamp_ns, msg)
            if progress:
                progress(f.index + 1)
    return Path(out)
