"""Open inference sessions on a chosen runtime, with interface checks and errors that say what to do.

Every graph of a model set is opened through :func:`open_session`, which
returns an object with ONNX Runtime's calling convention
(``run(output_names, feeds) -> list of arrays``, ``get_inputs()``,
``get_outputs()``) whichever runtime executes it:

``cpu``
    ONNX Runtime's CPU execution provider (always available).
``openvino``
    Intel's OpenVINO runtime (the ``openvino`` PyPI package) reading the same
    ONNX file, computing in fp32.  Not ONNX Runtime's OpenVINO provider: that
    ships as the ``onnxruntime-openvino`` wheel, which replaces the
    ``onnxruntime`` module itself, so it cannot sit beside the CPU build in one
    environment.
``openvino-bf16``
    The same with bfloat16 arithmetic, on CPUs that have it (AVX512-BF16, AMX):
    about twice as fast, and no longer exact (agreement in docs/benchmarks.md).
    OpenVINO picks bf16 by itself on such CPUs; ``openvino`` pins fp32.
``cuda``, ``tensorrt``, ``coreml``
    ONNX Runtime's execution providers of those names; they exist only in the
    matching ONNX Runtime builds (``onnxruntime-gpu`` on x86/Jetson, the macOS
    wheels for CoreML).

A preference list (``"openvino,cpu"``) is tried in order; a runtime that is
not installed or fails to load the graph is skipped with its reason, and CPU
is always the last resort.  The runtime that ended up running the graph is
recorded on the session (``session.runtime``, ``session.skipped``); the
detector logs one line for all its graphs (:func:`describe_runtimes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from tinyvlm_ros.models.manifest import FIX_HINT

#: Runtime names accepted in a provider list, and ONNX Runtime's provider for each (None: not ORT).
PROVIDERS: Dict[str, Union[str, None]] = {
    "cpu": "CPUExecutionProvider",
    "openvino": None,
    "openvino-bf16": None,
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
DEFAULT_PROVIDERS = ("cpu",)
#: What ``providers`` arguments accept: "openvino,cpu", ["openvino", "cpu"], or None (CPU).
ProviderSpec = Union[str, Sequence[str], None]


def parse_providers(spec: ProviderSpec) -> Tuple[str, ...]:
    """Turn ``"openvino,cpu"`` (or a list of names) into a checked tuple of runtime names.

    Raises:
        ValueError: an unknown name, or an empty list.
    """
    if spec is None:
        return DEFAULT_PROVIDERS
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out = tuple(n.strip().lower() for n in names if n.strip())
    if not out:
        raise ValueError(f"providers must name at least one of {', '.join(PROVIDERS)}, got {spec!r}")
    unknown = [n for n in out if n not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown provider(s) {', '.join(unknown)}; choose from {', '.join(PROVIDERS)} "
                         "(comma-separated, in order of preference)")
    return out


class _IO:
    """Name (and shape) of one graph input or output, as ONNX Runtime's NodeArg has them."""

    def __init__(self, name: str, shape) -> None:
        self.name = name
        self.shape = shape


class OpenVinoSession:
    """An ONNX file compiled by OpenVINO for the CPU, called like an ``ort.InferenceSession``.

    Args:
        path: the ONNX file.
        threads: inference threads (OpenVINO's ``INFERENCE_NUM_THREADS``).
        precision: "f32" or "bf16" (OpenVINO's ``INFERENCE_PRECISION_HINT``).

    Raises:
        ImportError: bf16 asked on a CPU without bf16 arithmetic.
    """

    def __init__(self, path: Path, threads: int, precision: str = "f32") -> None:
        import openvino as ov

        core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise ImportError("this CPU has no bf16 arithmetic")
        model = core.read_model(str(path))
        # latency hint: one request at a time, all threads on it (the detector's pattern); the
        # precision is pinned because OpenVINO would pick bf16 by itself on CPUs that have it
        self._compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": int(threads),
                                                           "PERFORMANCE_HINT": "LATENCY",
                                                           "INFERENCE_PRECISION_HINT": precision})
        self._request = self._compiled.create_infer_request()
        self._inputs = [_IO(p.get_any_name(), p.get_partial_shape().to_string()) for p in model.inputs]
        self._outputs = [_IO(p.get_any_name(), p.get_partial_shape().to_string()) for p in model.outputs]

    def get_inputs(self) -> List[_IO]:
        """Graph inputs (``.name``)."""
        return list(self._inputs)

    def get_outputs(self) -> List[_IO]:
        """Graph outputs (``.name``)."""
        return list(self._outputs)

    def run(self, output_names: Sequence[str], feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """Run once; outputs in ``output_names`` order (None: all), copied out of OpenVINO's buffers."""
        result = self._request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        by_name = {}
        for port, value in result.items():
            for name in port.get_names():
                by_name[name] = value
        names = [o.name for o in self._outputs] if output_names is None else list(output_names)
        return [np.array(by_name[n], copy=True) for n in names]


def _open_ort(path: Path, threads: int, provider: str, arena: bool = False):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # unused optional inputs would otherwise warn on every load
    # ORT's CPU arena keeps the largest batch's activations for the life of the session
    opts.enable_cpu_mem_arena = bool(arena)
    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    if sess.get_providers()[0] != provider:
        raise RuntimeError(f"ONNX Runtime put the graph on {sess.get_providers()[0]}")
    return sess


def fp32_twin(path: Path) -> Path:
    """Return the fp32 ``X.onnx`` an ``X.int8.onnx`` was quantized from if it is there, else ``path``."""
    path = Path(path)
    if path.name.endswith(".int8.onnx"):
        twin = path.with_name(path.name[:-len(".int8.onnx")] + ".onnx")
        if twin.is_file():
            return twin
    return path


def _open_on(name: str, path: Path, threads: int, arena: bool = False):
    """Open ``path`` on runtime ``name`` or raise RuntimeError/ImportError saying why not."""
    if name.startswith("openvino"):
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            raise ImportError("the openvino package is not installed (pip install openvino)") from exc
        # ONNX Runtime's dynamic int8 graphs (per-batch activation scales) run 2-3x slower on
        # OpenVINO than their fp32 twins (measured: docs/benchmarks.md), so OpenVINO reads the twin
        return OpenVinoSession(fp32_twin(path), threads, "bf16" if name == "openvino-bf16" else "f32")
    provider = PROVIDERS[name]
    if provider not in ort.get_available_providers():
        raise ImportError(f"this onnxruntime build ({ort.__version__}) has no {provider} "
                          f"(has {', '.join(ort.get_available_providers())})")
    return _open_ort(path, threads, provider, arena)


def open_session(path: Path, inputs: Sequence[str], outputs: Sequence[str], threads: int = 2,
                 providers: ProviderSpec = None, arena: bool = False):
    """Load one graph on the first runtime of ``providers`` that takes it; check its interface.

    Args:
        path: the ONNX file.
        inputs, outputs: the names the graph must have (``docs/models.md``).
        threads: intra-op threads.
        providers: runtime names in order of preference (see the module docstring); CPU is
            appended as the last resort.
        arena: let ONNX Runtime's CPU provider keep a memory arena.  Off by default: the arena
            keeps the largest call's activations for the session's life (the encoder's, the
            largest crop batch's and decoder batch's), which doubled the thorough mode's peak
            memory at 1024 input, for a few percent of speed.

    Returns:
        A session with ``run``/``get_inputs``/``get_outputs``, ``runtime`` (the name that runs it),
        ``graph`` (the file it runs: OpenVINO runs an int8 graph's fp32 twin when the set has it)
        and ``skipped`` (why each preferred runtime before it was not used).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is not a loadable ONNX graph or has the wrong interface, or a bad
            provider name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} is missing; {FIX_HINT}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    wanted = parse_providers(providers)
    order = list(dict.fromkeys(wanted + ("cpu",)))
    skipped: List[str] = []
    sess = None
    for name in order:
        try:
            sess = _open_on(name, path, threads, arena)
        except ImportError as exc:
            skipped.append(f"{name}: {exc}")
            continue
        except Exception as exc:  # runtimes raise their own exception types for graphs they reject
            if name == "cpu":
                raise ValueError(f"model file {path} cannot be loaded by ONNX Runtime "
                                 f"({type(exc).__name__}: {str(exc).strip()[:200]}); {FIX_HINT}") from exc
            skipped.append(f"{name}: {type(exc).__name__}: {str(exc).strip()[:160]}")
            continue
        break
    sess.runtime = name
    sess.skipped = skipped
    sess.graph = (fp32_twin(path) if name.startswith("openvino") else path).name
    have_in = {i.name for i in sess.get_inputs()}
    have_out = {o.name for o in sess.get_outputs()}
    missing = [n for n in inputs if n not in have_in] + [n for n in outputs if n not in have_out]
    if missing:
        raise ValueError(f"model file {path} does not have the interface of docs/models.md: missing "
                         f"{', '.join(missing)} (has inputs {sorted(have_in)}, outputs {sorted(have_out)}); "
                         f"{FIX_HINT}")
    return sess


def describe_runtimes(sessions: Dict[str, object]) -> str:
    """One line saying which runtime runs each graph and why a preferred one was skipped."""
    parts = []
    for label, sess in sessions.items():
        skipped = getattr(sess, "skipped", [])
        parts.append(f"{getattr(sess, 'graph', label)} on {getattr(sess, 'runtime', 'cpu')}"
                     + (f" (skipped {'; '.join(skipped)})" if skipped else ""))
    return ", ".join(parts)
