"""Follow the command's objects between keyframes: stable ids at camera rate on a small CPU.

The engine (0.1-5 s a frame) runs on keyframes; every camera frame in
between is tracked cheaply (sparse optical flow, :mod:`.flow`), tracks keep
integer ids across keyframes, short occlusions and brief exits
(:mod:`.manager`), and detection 0 stays on the same object.  Plain modules:
the node (``tinyvlm_ros.ros``) and the bag benchmark drive
:class:`~tinyvlm_ros.tracking.loop.TrackingLoop` one frame at a time.
"""

from tinyvlm_ros.tracking.frame import Frame
from tinyvlm_ros.tracking.loop import EngineAnswer, EngineJob, OfflineEngine, TrackingLoop, run_job
from tinyvlm_ros.tracking.manager import TRACKERS, TrackingConfig, TrackManager

__all__ = ["EngineAnswer", "EngineJob", "Frame", "OfflineEngine", "TRACKERS", "TrackManager",
           "TrackingConfig",
           "TrackingLoop", "run_job"]
