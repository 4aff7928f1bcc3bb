"""ROS 2 bag reading and writing without ROS: type store, image and detection messages.

The ``rosbags`` library reads and writes sqlite3 and mcap bags in plain Python.
Its built-in Jazzy type store has ``sensor_msgs`` and ``std_msgs`` but not
``vision_msgs``; those are registered here from the same ``.msg`` files the
build generates the ROS interfaces from, so a bag written here carries the
same definitions and type hashes as one recorded from the live node.

Readers stream: messages come one at a time from the storage, never a whole
bag in memory.  Every problem with a bag the user gave is a :class:`BagError`
(a ``ValueError``) whose message says what was wrong.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros import imaging
from tinyvlm_ros.detection_fields import detection_fields
from tinyvlm_ros.types import Detection

if TYPE_CHECKING:  # pragma: no cover
    from rosbags.typesys.store import Typestore

#: Topics of the bags that ``make-bag`` writes and the bench adds to.
TOPIC_IMAGE = "/camera/image_raw"
TOPIC_IMAGE_COMPRESSED = "/camera/image_raw/compressed"
TOPIC_COMMAND = "/command"
TOPIC_GROUND_TRUTH = "/ground_truth"
TOPIC_DETECTIONS = "/tinyvlm/detections"

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
DETECTION2D_ARRAY = "vision_msgs/msg/Detection2DArray"

IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
STORAGES = ("sqlite3", "mcap")

#: Environment variable naming a directory of vision_msgs ``*.msg`` files.
MSG_DIR_ENV = "TINYVLM_VISION_MSGS_DIR"


class BagError(ValueError):
    """A bag the user gave cannot be read or written as asked."""


# --------------------------------------------------------------------------- type store


def _msg_dir_candidates() -> List[Path]:
    here = Path(__file__).resolve()
    cands: List[Path] = []
    env = os.environ.get(MSG_DIR_ENV)
    if env:
        cands.append(Path(env))
    # source tree: <root>/tinyvlm_ros/bench/bagio.py -> <root>/tools/ros_env/vision_msgs/msg
    cands.append(here.parents[2] / "tools" / "ros_env" / "vision_msgs" / "msg")
    # installed by colcon: <prefix>/lib/pythonX.Y/site-packages/tinyvlm_ros/bench/bagio.py
    # -> <prefix>/share/tinyvlm_ros/vision_msgs/msg (the build copies the same files there)
    for parent in here.parents:
        cands.append(parent / "share" / "tinyvlm_ros" / "vision_msgs" / "msg")
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            cands.append(Path(prefix) / "share" / "tinyvlm_ros" / "vision_msgs" / "msg")
            cands.append(Path(prefix) / "share" / "vision_msgs" / "msg")
    cands.append(Path(sys.prefix) / "share" / "tinyvlm_ros" / "vision_msgs" / "msg")
    return cands


def find_vision_msgs_dir() -> Path:
    """Return the directory holding the vision_msgs ``.msg`` definitions.

    Looks at ``$TINYVLM_VISION_MSGS_DIR``, the source tree, the installed
    ``share/tinyvlm_ros/vision_msgs/msg`` and ``share/vision_msgs/msg`` of
    every ``AMENT_PREFIX_PATH`` entry, in that order.
    """
    cands = _msg_dir_candidates()
    for cand in cands:
        if (cand / "Detection2DArray.msg").is_file():
            return cand
    shown = "\n  ".join(str(c) for c in dict.fromkeys(cands))
    raise FileNotFoundError(f"vision_msgs .msg definitions not found; set {MSG_DIR_ENV} "
                            f"or look in:\n  {shown}")


@lru_cache(maxsize=None)
def _typestore_for(msg_dir: str) -> "Typestore":
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types: Dict[str, Any] = {}
    for path in sorted(Path(msg_dir).glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}"))
    store.register(types)
    return store


def typestore(msg_dir: Optional[Path] = None) -> "Typestore":
    """Jazzy type store with vision_msgs registered from the ``.msg`` files (cached)."""
    return _typestore_for(str((msg_dir or find_vision_msgs_dir()).resolve()))


# --------------------------------------------------------------------------- messages


def stamp_ns(stamp: Any) -> int:
    """Nanoseconds of a ``builtin_interfaces/Time``."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(store: "Typestore", t_ns: int, frame_id: str = "camera") -> Any:
    """Build a ``std_msgs/Header`` stamped ``t_ns``."""
    Time = store.types["builtin_interfaces/msg/Time"]
    Header = store.types["std_msgs/msg/Header"]
    return Header(stamp=Time(sec=int(t_ns // 1_000_000_000), nanosec=int(t_ns % 1_000_000_000)),
                  frame_id=frame_id)


def rgb_to_image(store: "Typestore", rgb: np.ndarray, header: Any, encoding: str = "rgb8") -> Any:
    """Build a ``sensor_msgs/Image`` from an HxWx3 uint8 RGB array (rgb8, bgr8 or mono8)."""
    h, w, enc, step, data = imaging.rgb_to_image(rgb, encoding)
    Image = store.types[IMAGE]
    return Image(header=header, height=h, width=w, encoding=enc, is_bigendian=0, step=step,
                 data=np.frombuffer(data, np.uint8))


def rgb_to_compressed(store: "Typestore", rgb: np.ndarray, header: Any, fmt: str = "jpeg",
                      quality: int = 90) -> Any:
    """Build a ``sensor_msgs/CompressedImage`` (jpeg or png) from an HxWx3 uint8 RGB array."""
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"compressed format must be jpeg or png, got {fmt!r}")
    fmt, data = imaging.encode_compressed(rgb, fmt, quality)
    Compressed = store.types[COMPRESSED_IMAGE]
    # image_transport names the format "<encoding>; <codec> compressed <encoding>"
    return Compressed(header=header, format=f"rgb8; {fmt} compressed bgr8",
                      data=np.frombuffer(data, np.uint8))


def image_to_rgb(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into HxWx3 uint8 RGB (every encoding :mod:`imaging` reads).

    Raises:
        ValueError: empty frame, unsupported encoding, or a buffer shorter than ``step * height``.
    """
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1).tobytes()
    return imaging.image_to_rgb(int(msg.height), int(msg.width), str(msg.encoding), int(msg.is_bigendian),
                                int(msg.step), data)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (any format OpenCV reads) into HxWx3 uint8 RGB.

    Raises:
        ValueError: the bytes do not decode to an image (a corrupt frame).
    """
    return imaging.decode_compressed(str(msg.format), np.asarray(msg.data, dtype=np.uint8).tobytes())


def msg_to_rgb(msgtype: str, msg: Any) -> np.ndarray:
    """Decode an Image or CompressedImage message into HxWx3 uint8 RGB."""
    if msgtype == IMAGE:
        return image_to_rgb(msg)
    if msgtype == COMPRESSED_IMAGE:
        return compressed_to_rgb(msg)
    raise ValueError(f"not an image type: {msgtype}")


def detections_to_msg(store: "Typestore", header: Any, detections: Sequence[Detection],
                      command_id: int = 0) -> Any:
    """Build a ``vision_msgs/Detection2DArray`` from detections, copying the image's header.

    The fields are those the live node publishes (:func:`tinyvlm_ros.detection_fields.detection_fields`):
    ``results[0].hypothesis`` = target phrase and score, ``results[0].pose`` and the bbox centre =
    the box centre in pixels, ``id`` = ``"<command_id>/<object_id>"`` (``command_id`` 0: no command,
    e.g. ground truth).
    """
    t = store.types
    out = []
    for f in detection_fields(detections, command_id):
        cx, cy = f.center
        hyp = t["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=t["vision_msgs/msg/ObjectHypothesis"](class_id=f.class_id, score=f.score),
            pose=_pose_with_cov(store, cx, cy))
        centre = t["vision_msgs/msg/Pose2D"](position=t["vision_msgs/msg/Point2D"](x=cx, y=cy), theta=0.0)
        bbox = t["vision_msgs/msg/BoundingBox2D"](center=centre, size_x=f.size[0], size_y=f.size[1])
        out.append(t["vision_msgs/msg/Detection2D"](header=header, results=[hyp], bbox=bbox, id=f.id))
    return t[DETECTION2D_ARRAY](header=header, detections=out)


def _pose_with_cov(store: "Typestore", x: float, y: float) -> Any:
    t = store.types
    pose = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=0.0),
        orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    return t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36, np.float64))


def object_id(value: str) -> int:
    """Return the object id in a ``Detection2D.id`` (``"<command_id>/<object_id>"`` or ``"<id>"``), else 0."""
    tail = str(value).rpartition("/")[2].strip()
    return int(tail) if tail.isdigit() else 0


def msg_to_detections(msg: Any, ids: bool = False) -> List[Detection]:
    """Read a ``vision_msgs/Detection2DArray`` (rosbags or rclpy object) back into Detections.

    Each Detection2D's best hypothesis gives label and score; a Detection2D
    without results gets an empty label and score 0.  With ``ids`` the object
    id in ``Detection2D.id`` (:func:`object_id`) becomes ``track_id``: a
    ground-truth identity, or the node's track id when it tracks.
    """
    out: List[Detection] = []
    for d in msg.detections:
        label, score = "", 0.0
        if len(d.results):
            best = max(d.results, key=lambda r: r.hypothesis.score)
            label, score = str(best.hypothesis.class_id), float(best.hypothesis.score)
        cx, cy = float(d.bbox.center.position.x), float(d.bbox.center.position.y)
        sx, sy = float(d.bbox.size_x), float(d.bbox.size_y)
        out.append(Detection(label=label, score=score,
                             box_xyxy=(cx - sx / 2.0, cy - sy / 2.0, cx + sx / 2.0, cy + sy / 2.0),
                             track_id=object_id(d.id) if ids else 0))
    return out


# --------------------------------------------------------------------------- bags


def _reader_errors() -> Tuple[type, ...]:
    """Exceptions a damaged bag raises from rosbags, its sqlite driver and its decoders."""
    from rosbags.rosbag2 import ReaderError

    errs: List[type] = [ReaderError, sqlite3.Error, struct.error, EOFError, OSError, KeyError, IndexError]
    try:
        import apsw

        errs.append(apsw.Error)
    except ImportError:  # pragma: no cover - rosbags always ships it today
        pass
    return tuple(errs)


def bag_storage(path: Path) -> str:
    """Storage plugin of a bag directory or file: ``sqlite3`` or ``mcap``."""
    path = Path(path)
    files = [path] if path.is_file() else list(path.iterdir()) if path.is_dir() else []
    suffixes = {f.suffix for f in files}
    if ".mcap" in suffixes:
        return "mcap"
    if ".db3" in suffixes:
        return "sqlite3"
    raise BagError(f"{path} is not a ROS 2 bag (no .db3 or .mcap file)")


class BagReader:
    """Stream messages of a sqlite3 or mcap bag (directory, .db3 or .mcap file).

    Use as a context manager.  Opening errors and damage met while reading
    become :class:`BagError` with the bag's path in the message.
    """

    def __init__(self, path: Path, store: Optional["Typestore"] = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag {self.path} does not exist")
        self.store = store or typestore()
        self.storage = bag_storage(self.path)
        self._reader: Any = None

    def __enter__(self) -> "BagReader":
        from rosbags.rosbag2 import Reader

        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except _reader_errors() as exc:
            raise BagError(f"cannot open bag {self.path}: {exc} (truncated or corrupt?)") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._reader is not None and self._reader.is_open:
            try:
                self._reader.close()
            except _reader_errors():
                pass

    @property
    def topics(self) -> Dict[str, str]:
        """Topic name -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def connections(self) -> List[Any]:
        return list(self._reader.connections)

    def count(self, topic: str) -> int:
        """Messages on ``topic`` according to the bag's index (0 when absent)."""
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def describe_topics(self) -> str:
        """One line per topic: name, type and count."""
        if not self._reader.connections:
            return "  (no topics)"
        return "\n".join(f"  {c.topic}  [{c.msgtype}]  {c.msgcount} msgs" for c in self._reader.connections)

    def require_topic(self, topic: str, types: Iterable[str]) -> str:
        """Return ``topic``'s type; BagError listing the topics if missing or mistyped."""
        types = tuple(types)
        have = self.topics
        if topic not in have:
            raise BagError(f"bag {self.path} has no topic {topic!r}; its topics are:\n"
                           f"{self.describe_topics()}")
        if have[topic] not in types:
            raise BagError(f"topic {topic!r} in {self.path} has message type {have[topic]}, "
                           f"expected one of: {', '.join(types)}")
        if have[topic] not in self.store.types:
            raise BagError(f"unknown message type {have[topic]} on {topic!r}")
        return have[topic]

    def raw(self, topics: Optional[Iterable[str]] = None) -> Iterator[Tuple[Any, int, bytes]]:
        """Yield (connection, log time ns, CDR bytes) in log-time order, for ``topics`` or all."""
        wanted = set(topics) if topics is not None else None
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        it = self._reader.messages(connections=conns)
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except _reader_errors() as exc:
                raise BagError(f"bag {self.path} is damaged: {exc} (truncated or corrupt?)") from None
            yield item

    def decode(self, conn: Any, data: bytes) -> Any:
        """Deserialize CDR bytes of ``conn``'s type; ValueError when they do not parse."""
        if conn.msgtype not in self.store.types:
            raise BagError(f"unknown message type {conn.msgtype} on {conn.topic!r}")
        try:
            return self.store.deserialize_cdr(data, conn.msgtype)
        except Exception as exc:  # rosbags raises struct/index/assertion errors on bad CDR
            raise ValueError(f"message on {conn.topic} does not deserialize as {conn.msgtype}: "
                             f"{exc}") from None


class BagWriter:
    """Write a sqlite3 or mcap bag; use as a context manager so the bag is always closed valid.

    ``flush_every`` messages the storage is committed so that a crash loses at
    most that many messages (sqlite3 commits its transaction, mcap flushes its
    file; mcap's index is still only written on close).
    """

    def __init__(self, path: Path, storage: str = "sqlite3", store: Optional["Typestore"] = None,
                 flush_every: int = 200) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; choose a new path or delete it")
        self.storage = storage
        self.store = store or typestore()
        self.flush_every = max(1, int(flush_every))
        self._writer: Any = None
        self._conns: Dict[str, Any] = {}
        self._since_flush = 0

    def __enter__(self) -> "BagWriter":
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def add_topic(self, topic: str, msgtype: str, *, msgdef: Optional[str] = None,
                  rihs01: Optional[str] = None) -> None:
        """Declare a topic; ``msgdef``/``rihs01`` copy a source bag's definition verbatim."""
        if topic in self._conns:
            return
        if msgdef and rihs01:
            conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01)
        else:
            if msgtype not in self.store.types:
                raise BagError(f"unknown message type {msgtype} for {topic!r}")
            conn = self._writer.add_connection(topic, msgtype, typestore=self.store)
        self._conns[topic] = conn

    def add_like(self, conn: Any) -> None:
        """Declare a topic exactly like a source bag's connection."""
        msgdef = conn.msgdef.data if conn.msgdef is not None else None
        self.add_topic(conn.topic, conn.msgtype, msgdef=msgdef or None, rihs01=conn.digest or None)

    def write(self, topic: str, t_ns: int, msg: Any) -> None:
        """Serialize and write a message object to a declared topic."""
        self.write_raw(topic, t_ns, self.store.serialize_cdr(msg, msg.__msgtype__))

    def write_raw(self, topic: str, t_ns: int, data: bytes) -> None:
        """Write already serialized CDR bytes to a declared topic."""
        self._writer.write(self._conns[topic], int(t_ns), data)
        self._since_flush += 1
        if self._since_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Push what was written so far to disk (see the class docstring for the limits)."""
        self._since_flush = 0
        storage = getattr(self._writer, "storage", None)
        conn = getattr(storage, "conn", None)
        if conn is not None:  # sqlite3
            conn.commit()
        bio = getattr(storage, "bio", None)
        if bio is not None:  # mcap: completed chunks are already in the file
            bio.flush()
