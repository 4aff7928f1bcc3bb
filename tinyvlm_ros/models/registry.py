"""The checkpoints tinyvlm_ros knows, where they come from, and where they are cached.

One table names every upstream checkpoint (TinyCLIP variants and MobileSAM)
with its public release URL, so ``fetch`` downloads it, ``export`` finds it and
the offline message can say exactly which file belongs where.

Checksums: the upstream releases publish no sha256, so ``sha256`` is ``None``
until someone records the digest of a verified download (``tinyvlm models
fetch`` prints it).  A ``None`` checksum is reported, never silently trusted
as verified.  Sizes are approximate (parameter count x 4 bytes, rounded) and
only serve messages and progress bars when a server sends no length.

The TinyCLIP hyperparameters below are transcribed from the model-config JSON
files published with TinyCLIP (microsoft/Cream, ``TinyCLIP/src/open_clip/
model_configs``); open_clip 3.3.0 ships none of them, so export registers them
with ``open_clip.add_model_config``.  Parameter counts cross-check them: e.g.
ViT-61M/32 is 12 layers x 12 x 640^2 = 59 M plus patch embedding and
projection; Text-29M is 9 layers x 12 x 512^2 = 28.3 M plus projection
(TinyCLIP's names count text parameters without the token embedding).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: Environment variable that overrides the cache directory.
CACHE_ENV = "TINYVLM_MODELS"

#: Name of the model set the detector uses by default.
DEFAULT_SET_NAME = "mobilesam+tinyclip-61m-32"


@dataclass(frozen=True)
class ModelSpec:
    """One upstream checkpoint.

    Attributes:
        name: short registry name ("tinyclip-61m-32", "mobilesam").
        family: "clip" or "sam".
        filename: file name in ``<cache>/checkpoints``.
        url: public release URL of the checkpoint.
        sha256: hex digest, or None when upstream publishes none.
        approx_mb: approximate download size in MB.
        description: one line for ``tinyvlm models list``.
        open_clip_name: open_clip model-config name (clip family only).
    """

    name: str
    family: str
    filename: str
    url: str
    sha256: Optional[str]
    approx_mb: float
    description: str
    open_clip_name: Optional[str] = None


_TINYCLIP_RELEASE = "https://github.com/wkcn/TinyCLIP-model-zoo/releases/download/checkpoints/"

#: TinyCLIP open_clip configs, transcribed from the TinyCLIP release (see module docstring).
TINYCLIP_CONFIGS: Dict[str, Dict[str, Any]] = {
    "TinyCLIP-ViT-8M-16-Text-3M": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 10, "width": 256, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 3},
    },
    "TinyCLIP-ViT-39M-16-Text-19M": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 512, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 6},
    },
    "TinyCLIP-ViT-61M-32-Text-29M": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 640, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 9},
    },
}

MODELS: Dict[str, ModelSpec] = {
    spec.name: spec for spec in (
        ModelSpec(
            name="tinyclip-8m-16", family="clip",
            filename="TinyCLIP-ViT-8M-16-Text-3M-YFCC15M.pt",
            url=_TINYCLIP_RELEASE + "TinyCLIP-ViT-8M-16-Text-3M-YFCC15M.pt",
            sha256=None, approx_mb=95.0,
            description="TinyCLIP ViT-8M/16 Text-3M (YFCC15M): smallest, weaker on thin objects",
            open_clip_name="TinyCLIP-ViT-8M-16-Text-3M"),
        ModelSpec(
            name="tinyclip-39m-16", family="clip",
            filename="TinyCLIP-ViT-39M-16-Text-19M-YFCC15M.pt",
            url=_TINYCLIP_RELEASE + "TinyCLIP-ViT-39M-16-Text-19M-YFCC15M.pt",
            sha256=None, approx_mb=330.0,
            description="TinyCLIP ViT-39M/16 Text-19M (YFCC15M): ~3x slower visual tower than 61M/32",
            open_clip_name="TinyCLIP-ViT-39M-16-Text-19M"),
        ModelSpec(
            name="tinyclip-61m-32", family="clip",
            filename="TinyCLIP-ViT-61M-32-Text-29M-LAION400M.pt",
            url=_TINYCLIP_RELEASE + "TinyCLIP-ViT-61M-32-Text-29M-LAION400M.pt",
            sha256=None, approx_mb=460.0,
            description="TinyCLIP ViT-61M/32 Text-29M (LAION400M): the reference recipe's matcher",
            open_clip_name="TinyCLIP-ViT-61M-32-Text-29M"),
        ModelSpec(
            name="mobilesam", family="sam",
            filename="mobile_sam.pt",
            url="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
            sha256=None, approx_mb=39.0,
            description="MobileSAM: TinyViT-5M image encoder + SAM prompt encoder and mask decoder"),
    )
}

#: Short aliases accepted wherever a model name is: "61m-32" -> "tinyclip-61m-32".
_ALIASES = {
    **{n.split("tinyclip-", 1)[1]: n for n in MODELS if n.startswith("tinyclip-")},
    **{MODELS[n].open_clip_name.lower(): n for n in MODELS if MODELS[n].open_clip_name},
    **{Path(MODELS[n].filename).stem.lower(): n for n in MODELS},
    "mobile_sam": "mobilesam",
}


def resolve(name: str) -> ModelSpec:
    """Return the spec for a registry name or alias ("61m-32", "TinyCLIP-ViT-61M-32-Text-29M")."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))} "
                         f"(see `tinyvlm models list`)")
    return MODELS[key]


def default_set_models() -> List[ModelSpec]:
    """Return the checkpoints of the default model set: the members named in :data:`DEFAULT_SET_NAME`."""
    return [resolve(name) for name in DEFAULT_SET_NAME.split("+")]


def set_name(clip: ModelSpec) -> str:
    """Name of the model set MobileSAM + ``clip`` export into ("mobilesam+tinyclip-61m-32")."""
    return f"{MODELS['mobilesam'].name}+{clip.name}"


def resolve_many(names: Optional[Sequence[str]]) -> List[ModelSpec]:
    """Resolve names (the default set's checkpoints when None or empty), keeping order and dropping repeats.

    ``["all"]`` gives every registry model.
    """
    if not names:
        return default_set_models()
    if [n.strip().lower() for n in names] == ["all"]:
        return list(MODELS.values())
    out: List[ModelSpec] = []
    for n in names:
        spec = resolve(n)
        if spec not in out:
            out.append(spec)
    return out


def clip_config(spec_or_name: Any) -> Dict[str, Any]:
    """Return a copy of the open_clip config of a TinyCLIP model (spec, name or alias)."""
    spec = spec_or_name if isinstance(spec_or_name, ModelSpec) else resolve(str(spec_or_name))
    if spec.family != "clip" or spec.open_clip_name not in TINYCLIP_CONFIGS:
        raise ValueError(f"{spec.name} is not a TinyCLIP model; choose one of "
                         f"{', '.join(n for n, s in MODELS.items() if s.family == 'clip')}")
    return copy.deepcopy(TINYCLIP_CONFIGS[spec.open_clip_name])


def cache_dir(override: Optional[os.PathLike] = None) -> Path:
    """Return the model cache: ``override``, else ``$TINYVLM_MODELS``, else ``$XDG_CACHE_HOME/tinyvlm_ros``.

    ``$XDG_CACHE_HOME`` defaults to ``~/.cache``.
    """
    if override:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinyvlm_ros"


def checkpoint_path(spec: ModelSpec, cache: Optional[os.PathLike] = None) -> Path:
    """Return where a checkpoint lives in the cache (it may not exist yet)."""
    return cache_dir(cache) / "checkpoints" / spec.filename


def model_set_dir(clip: ModelSpec, cache: Optional[os.PathLike] = None) -> Path:
    """Return where ``tinyvlm models export`` writes the set of MobileSAM + ``clip`` in the cache."""
    return cache_dir(cache) / "sets" / set_name(clip)


def default_model_set_dir(cache: Optional[os.PathLike] = None) -> Path:
    """Return the directory of the default model set (what the node and the CLI load by default)."""
    return cache_dir(cache) / "sets" / DEFAULT_SET_NAME
