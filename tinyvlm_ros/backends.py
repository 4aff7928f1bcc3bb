"""Build the detection engine the node's parameters ask for.

Plain Python: the node passes its parameter values, this module returns an
object implementing :class:`tinyvlm_ros.types.Engine`, or raises an error
whose message names what is missing and how to provide it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional

from tinyvlm_ros.types import Engine


def default_model_dir() -> Path:
    """Return the model set used when ``model_dir`` is empty: the cache's default set.

    The cache is ``$TINYVLM_MODELS`` (else ``$XDG_CACHE_HOME/tinyvlm_ros``); ``tinyvlm
    models export`` writes the default set there.
    """
    from tinyvlm_ros.models.registry import default_model_set_dir

    return default_model_set_dir()


def make_engine(cfg: Dict[str, Any], host_clock: Optional[Callable[[], int]] = None) -> Engine:
    """Create the engine for ``cfg`` (the node's parameter values by name).

    ``host_clock`` (ns; the node's ROS clock) is the time base of device-camera capture stamps.

    Raises:
        FileNotFoundError: the model set (or one of its files) is missing.
        ValueError: a parameter combination that cannot work, or a corrupt model.
        ConnectionError: the MCU cannot be reached (backend ``mcu``).
    """
    backend = cfg.get("backend", "local")
    if backend == "local":
        return _make_local(cfg)
    if backend == "mcu":
        return _make_mcu(cfg, host_clock)
    raise ValueError(f"unknown backend {backend!r}; use local or mcu")


def _model_dir(cfg: Dict[str, Any]) -> Path:
    path = Path(cfg["model_dir"]).expanduser() if cfg.get("model_dir") else default_model_dir()
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no model set at {path} (missing {path / 'manifest.json'}); run `tinyvlm models fetch` "
            f"and `tinyvlm models export`, or `tinyvlm models make-test {path}` for the generated test set, "
            "then set model_dir")
    return path


def _make_local(cfg: Dict[str, Any]) -> Engine:
    from tinyvlm_ros.engine.detector import Detector

    dim = int(cfg.get("matryoshka_dim") or 0)
    return Detector.from_dir(_model_dir(cfg), mode=cfg.get("mode", "fast"),
                             threads=int(cfg.get("threads", 2)), matryoshka_dim=dim or None,
                             providers=cfg.get("providers") or None,
                             decoder_window=int(cfg.get("decoder_window", 16)))


def _make_mcu(cfg: Dict[str, Any], host_clock: Optional[Callable[[], int]] = None) -> Engine:
    from tinyvlm_ros.mcu.backend import McuEngine

    port = str(cfg.get("serial_port") or "")
    if not port:
        raise ValueError("backend mcu needs serial_port: a device (/dev/ttyACM0) or a pyserial URL "
                         "(socket://127.0.0.1:5555; `tinyvlm mcu emulate` prints one)")
    allow_random = bool(cfg.get("mcu_allow_random_model"))
    if not cfg.get("mcu_model_dir") and not allow_random:
        raise ValueError("backend mcu needs mcu_model_dir: a trained encoder from `tinyvlm mcu distill "
                         "--out DIR` whose DIR/model.tvm runs on the device. The firmware's built-in encoder "
                         "has random weights and finds nothing; set mcu_allow_random_model:=true only to "
                         "test the wiring")
    fallback = _make_local(cfg) if cfg.get("mcu_fallback") else None
    common: Dict[str, Any] = dict(baud=int(cfg.get("serial_baud", 921600)),
                                  timeout=float(cfg.get("mcu_timeout_s", 2.0)), fallback=fallback,
                                  max_detections=min(32, int(cfg.get("max_detections", 10))),
                                  allow_random_model=allow_random)
    if host_clock is not None:
        common["host_clock"] = host_clock
    dims = int(cfg.get("matryoshka_dim") or 0) or None
    if cfg.get("mcu_model_dir"):
        # A trained encoder: its text projection, prefix and calibrated threshold.  The MCU must run the
        # same model blob (the engine checks the model id at open).
        from tinyvlm_ros.mcu.trained_model import engine_inputs

        teacher = _model_dir(cfg) if cfg.get("model_dir") else None
        inputs = engine_inputs(Path(cfg["mcu_model_dir"]).expanduser(), teacher_dir=teacher, dims=dims)
        engine = inputs.engine(port, **common)
    else:
        # Wiring tests on the random built-in encoder: the host's CLIP text tower embeds each phrase as it is.
        from tinyvlm_ros.engine.matcher import ClipMatcher
        from tinyvlm_ros.models.manifest import load_manifest

        text = ClipMatcher(load_manifest(_model_dir(cfg)).clip, threads=int(cfg.get("threads", 2)))

        def text_embed(phrases):
            # the same caption the host matcher scores crops against
            return text.embed_texts([text.prompt(p) for p in phrases])

        engine = McuEngine(port, text_embed, dims=dims or min(64, text.dim), **common)
    try:
        engine.open()
    except (ConnectionError, TimeoutError, OSError) as exc:
        if fallback is None:
            raise ConnectionError(f"MCU at {port} does not answer: {exc}") from exc
        engine.degraded, engine.last_error = True, str(exc)
    except ValueError:
        engine.close()  # e.g. a random-weight or another model on the device: free the port
        raise
    if cfg.get("mcu_camera") == "device":
        if fallback is not None:
            raise ValueError("mcu_camera device takes frames from the MCU's camera: mcu_fallback has no "
                             "frames to run on; switch one of them off")
        if engine.link.is_open and not engine.link.info.get("camera"):
            raise ValueError(f"mcu_camera device, but the MCU at {port} reports no camera; "
                             "use mcu_camera host")
    return engine
