"""Read upstream checkpoints as tensors only, in every layout the upstream loaders accept.

* **Tensors only.**  ``torch.load(weights_only=True)``: a checkpoint is data,
  never code to run.  A training checkpoint that also pickles Python objects
  (TinyCLIP saves its ``argparse.Namespace`` under ``"args"``) cannot be read
  that way; :class:`PickledCheckpointError` says so and names the explicit
  opt-in, ``tinyvlm models convert-checkpoint IN OUT --trust-pickle``, which
  unpickles the file once, on the user's word, and writes a tensors-only copy.
* **TinyCLIP layouts.**  TinyCLIP's loader (``factory.load_state_dict`` and
  ``CLIPBase.load_state_dict`` in wkcn/TinyCLIP) takes: a ``state_dict``
  wrapper or none; a whole-model DDP ``module.`` prefix; its own tower layout
  (``_image_encoder.``, ``_text_encoder.``, ``_logit_scale.``), each tower with
  or without its own DDP ``.module``; plain open_clip keys (an "old CLIP
  checkpoint" to it); and a ``visual.model.head.{0,1}`` head instead of
  ``visual.ln_post`` / ``visual.proj``.  :func:`clip_state_dict` maps all of
  them to open_clip's keys; anything else fails the strict key check with the
  missing and unexpected keys named.

torch is the ``export`` extra: it is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, Tuple

#: Wrappers training scripts put around the state dict (open_clip/TinyCLIP "state_dict").
_WRAPPERS = ("state_dict", "model", "module")
#: TinyCLIP's tower prefixes; without them the keys are open_clip's CLIP keys.
_TINYCLIP_TOWERS = ("_image_encoder.", "_text_encoder.", "_logit_scale.")


class PickledCheckpointError(ValueError):
    """The checkpoint holds pickled Python objects, so it cannot be read as tensors only."""


def convert_hint(path: Path) -> str:
    """Return the opt-in command that turns a pickled training checkpoint into a tensors-only file."""
    out = path.with_name(path.stem + ".tensors.pt")
    return f"tinyvlm models convert-checkpoint {path} {out} --trust-pickle"


def _is_pickle_refusal(exc: Exception) -> bool:
    text = str(exc)
    return "Weights only load failed" in text or "Unsupported global" in text


def load_tensors(path: Path) -> Dict[str, Any]:
    """Read a checkpoint's state dict with ``weights_only=True`` and unwrap training wrappers.

    Raises:
        FileNotFoundError: no such file.
        PickledCheckpointError: the file pickles Python objects (a training checkpoint).
        ValueError: the file is not a readable torch checkpoint or holds no state dict.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; `tinyvlm models fetch` downloads it "
                                "(or copy it there by hand)")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        if _is_pickle_refusal(exc):
            raise PickledCheckpointError(
                f"checkpoint {path} holds pickled Python objects besides its tensors (a training "
                "checkpoint, e.g. with the argparse Namespace of its run), so it cannot be read as "
                "tensors only, and it is never unpickled silently. If you trust where it came from, "
                f"convert it once: `{convert_hint(path)}`, then export from the converted file") from exc
        raise ValueError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); "
                         "it is corrupt or not a torch checkpoint: delete it and fetch again") from exc
    return unwrap(state, path)


def unwrap(state: Any, path: Path) -> Dict[str, Any]:
    """Take the state dict out of the dicts training scripts save around it."""
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a state_dict")
    return state


def _strip_ddp(state: Dict[str, Any]) -> Dict[str, Any]:
    # DDP wraps the whole model: every key starts with "module." (TinyCLIP checks the first key)
    if next(iter(state)).startswith("module."):
        return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return state


def clip_state_dict(state: Dict[str, Any], path: Path) -> Dict[str, Any]:
    """Map a TinyCLIP / open_clip state dict in any upstream layout to open_clip's CLIP keys.

    Raises:
        ValueError: TinyCLIP's tower layout without an image or a text tower.
    """
    state = _strip_ddp(state)
    if any(k.startswith(_TINYCLIP_TOWERS) for k in state):
        out: Dict[str, Any] = {}
        for k, v in state.items():
            # each tower may carry its own DDP wrapper: "_image_encoder.module.visual..."
            k = k.replace(".module.", ".")
            for prefix in _TINYCLIP_TOWERS:
                if k.startswith(prefix):
                    k = k[len(prefix):]
                    break
            out[k] = v
        towers = {p for p in _TINYCLIP_TOWERS if any(k.startswith(p) for k in state)}
        for prefix, what in (("_image_encoder.", "image"), ("_text_encoder.", "text")):
            if prefix not in towers:
                # TinyCLIP's loader would silently swap in its distillation teacher's tower here
                raise ValueError(f"checkpoint {path} has no {what} tower ({prefix}* keys): it is a "
                                 "partial TinyCLIP training checkpoint; export needs both towers")
        state = out
    if "visual.model.head.0.weight" in state:
        # TinyCLIP's timm-style head: LayerNorm then a bias-free Linear, i.e. ln_post and proj
        state = dict(state)
        state["visual.ln_post.weight"] = state.pop("visual.model.head.0.weight")
        state["visual.ln_post.bias"] = state.pop("visual.model.head.0.bias")
        state["visual.proj"] = state.pop("visual.model.head.1.weight").T.contiguous()
    return state


def sam_state_dict(state: Dict[str, Any]) -> Dict[str, Any]:
    """Return MobileSAM's keys (``image_encoder.*``, ``mask_decoder.*``, ...) without a DDP prefix."""
    return _strip_ddp(state)


def strict_load(module, state: Dict[str, Any], path: Path, ignorable_suffixes: Tuple[str, ...] = (),
                hint: str = "") -> None:
    """Load ``state`` into ``module``; every key must match (derived buffers may be extra).

    Raises:
        ValueError: missing or unexpected keys, or a tensor of the wrong shape; the message
            names the checkpoint and examples of each.
    """
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ: another variant of the model
        first = str(exc).strip().splitlines()
        raise ValueError(f"checkpoint {path} does not fit the architecture: "
                         f"{' '.join(line.strip() for line in first[:3])}; {hint}") from exc
    unexpected = [k for k in unexpected if not k.endswith(ignorable_suffixes)]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit the architecture: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}); {hint}")


def convert_checkpoint(src: Path, dst: Path, trust_pickle: bool = False,
                       log=print) -> Dict[str, Any]:
    """Write the tensors of checkpoint ``src`` to ``dst``, readable with ``weights_only=True``.

    Args:
        src: the checkpoint to read.
        dst: the tensors-only file to write (``{"state_dict": {name: tensor}}``).
        trust_pickle: allow unpickling ``src`` when it holds Python objects.  Unpickling runs
            whatever code the file names: only for files whose origin you trust.
        log: progress lines.

    Returns:
        A summary: ``tensors`` (count), ``dropped`` (top-level entries that were not the state dict).

    Raises:
        PickledCheckpointError: ``src`` holds Python objects and ``trust_pickle`` is False.
        ValueError: no state dict of tensors found in ``src``.
    """
    import torch

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"checkpoint {src} not found")
    if src.resolve() == dst.resolve():
        raise ValueError(f"convert-checkpoint writes a new file: give an output path other than {src}")
    try:
        raw = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as exc:
        if not _is_pickle_refusal(exc):
            raise ValueError(f"cannot read checkpoint {src} ({type(exc).__name__}: {exc})") from exc
        if not trust_pickle:
            raise PickledCheckpointError(
                f"checkpoint {src} holds pickled Python objects; reading it runs the code they name. "
                "Only for a file whose origin you trust, add --trust-pickle") from exc
        log(f"unpickling {src} (--trust-pickle given)")
        raw = torch.load(str(src), map_location="cpu", weights_only=False)
    dropped = sorted(k for k in raw if k not in _WRAPPERS) if isinstance(raw, dict) and any(
        isinstance(raw.get(w), dict) for w in _WRAPPERS) else []
    state = unwrap(raw, src)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    skipped = sorted(set(state) - set(tensors))
    if not tensors:
        raise ValueError(f"checkpoint {src} has no tensors in its state dict")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    torch.save({"state_dict": tensors}, str(tmp))
    torch.load(str(tmp), map_location="cpu", weights_only=True)  # the point of the copy: it must load so
    tmp.replace(dst)
    log(f"wrote {len(tensors)} tensors to {dst}"
        + (f"; left out: {', '.join(dropped + skipped)}" if dropped or skipped else ""))
    return {"tensors": len(tensors), "dropped": dropped + skipped}


def key_report(module, state: Dict[str, Any], ignorable_suffixes: Iterable[str] = ()) -> Dict[str, Any]:
    """Missing and unexpected keys of ``state`` for ``module``, without loading (for reports)."""
    own = set(module.state_dict())
    have = set(state)
    ignore = tuple(ignorable_suffixes)
    return {"missing": sorted(own - have),
            "unexpected": sorted(k for k in have - own if not k.endswith(ignore))}
