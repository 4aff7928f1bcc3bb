"""Build the detection engine the node's parameters ask for.

Plain Python: the node passes its parameter values, this module returns an
object implementing :class:`tinyvlm_ros.types.Engine`, or raises an error
whose message names what is missing and how to provide it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

from tinyvlm_ros.types import Engine


def default_model_dir() -> Path:
    """Return the model set used when ``model_dir`` is empty ($TINYVLM_MODELS or the cache default)."""
    env = os.environ.get("TINYVLM_MODELS")
    if env:
        return Path(env).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "tinyvlm_ros" / "models" / "default"


def make_engine(cfg: Dict[str, Any]) -> Engine:
    """Create the engine for ``cfg`` (the node's parameter values by name).

    Raises:
        FileNotFoundError: the model set (or one of its files) is missing.
        ValueError: a parameter combination that cannot work, or a corrupt model.
        ConnectionError: the MCU cannot be reached (backend ``mcu``).
    """
    backend = cfg.get("backend", "local")
    if backend == "local":
        return _make_local(cfg)
    if backend == "mcu":
        return _make_mcu(cfg)
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
                             threads=int(cfg.get("threads", 2)), matryoshka_dim=dim or None)


def _make_mcu(cfg: Dict[str, Any]) -> Engine:
    raise ValueError("the mcu backend is not available in this build")
