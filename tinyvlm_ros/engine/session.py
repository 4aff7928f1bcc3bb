"""Open ONNX Runtime sessions with interface checks and errors that say what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import onnxruntime as ort

from tinyvlm_ros.models.manifest import FIX_HINT


def open_session(path: Path, inputs: Sequence[str], outputs: Sequence[str],
                 threads: int = 2) -> ort.InferenceSession:
    """Load one graph on the CPU and check its input/output names against ``docs/models.md``.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is not a loadable ONNX graph or has the wrong interface.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} is missing; {FIX_HINT}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # unused optional inputs would otherwise warn on every load
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind exception types for bad files
        raise ValueError(f"model file {path} cannot be loaded by ONNX Runtime "
                         f"({type(exc).__name__}: {str(exc).strip()[:200]}); {FIX_HINT}") from exc
    have_in = {i.name for i in sess.get_inputs()}
    have_out = {o.name for o in sess.get_outputs()}
    missing = [n for n in inputs if n not in have_in] + [n for n in outputs if n not in have_out]
    if missing:
        raise ValueError(f"model file {path} does not have the interface of docs/models.md: missing "
                         f"{', '.join(missing)} (has inputs {sorted(have_in)}, outputs {sorted(have_out)}); "
                         f"{FIX_HINT}")
    return sess
