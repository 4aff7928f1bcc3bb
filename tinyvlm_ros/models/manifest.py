"""Load and check a model set's ``manifest.json`` (format 1, see ``docs/models.md``).

Every error names the file at fault and how to get a good model set, because
the person reading it is usually setting up a robot, not debugging Python.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

MANIFEST_NAME = "manifest.json"
FORMAT = 1
KINDS = ("real", "random", "known-answer")

FIX_HINT = ("get a model set with `tinyvlm models fetch` (real weights) or write a test set with "
            "`tinyvlm models make-test DIR`")


@dataclass
class SamConfig:
    """The segmenter half of a model set."""

    encoder: Path
    decoder: Path
    input_size: int
    embed_size: int
    pixel_mean: List[float]
    pixel_std: List[float]
    #: the decoder on a window of the image embedding (optional; None: full-grid decoding only)
    decoder_window: Optional[Path] = None


@dataclass
class ClipConfig:
    """The matcher half of a model set."""

    visual: Path
    text: Path
    image_size: int
    embed_dim: int
    context_length: int
    mean: List[float]
    std: List[float]
    tokenizer: Path
    logit_scale: float


@dataclass
class Int8Check:
    """How an int8 graph agreed with its fp32 twin when the set was exported (manifest ``int8``)."""

    graph: str
    file: str
    used: bool
    metrics: Dict[str, float]
    bounds: Dict[str, float]
    calibration: str


@dataclass
class ModelSet:
    """A validated model set: absolute paths and preprocessing constants."""

    root: Path
    name: str
    kind: str
    sam: SamConfig
    clip: ClipConfig
    files: Dict[str, str] = field(default_factory=dict)
    int8: Dict[str, Int8Check] = field(default_factory=dict)  # absent in sets exported before the check


def sha256_file(path: Union[str, Path]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _need(section: dict, key: str, kind: type, where: str, manifest: Path):
    if key not in section:
        raise ValueError(f"{manifest}: missing '{where}.{key}'; {FIX_HINT}")
    value = section[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{manifest}: '{where}.{key}' must be {kind.__name__}, got {value!r}")
    return value


def _triple(section: dict, key: str, where: str, manifest: Path) -> List[float]:
    value = _need(section, key, list, where, manifest)
    if len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise ValueError(f"{manifest}: '{where}.{key}' must be three numbers, got {value!r}")
    return [float(v) for v in value]


def load_manifest(model_dir: Union[str, Path], verify_hashes: bool = True) -> ModelSet:
    """Read, validate and (optionally) hash-check a model set.

    Args:
        model_dir: the model set directory (or its ``manifest.json``).
        verify_hashes: compare every listed file's sha256 with the manifest.

    Raises:
        FileNotFoundError: the directory, the manifest or a model file is missing.
        ValueError: the manifest is malformed or a file's hash does not match.
    """
    root = Path(model_dir).expanduser()
    if root.name == MANIFEST_NAME and root.is_file():
        root = root.parent
    manifest = root / MANIFEST_NAME
    if not root.is_dir():
        raise FileNotFoundError(f"model directory {root} does not exist; {FIX_HINT}")
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: {root} is not a model set; {FIX_HINT}")
    try:
        data = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{manifest} is not valid JSON ({exc}); {FIX_HINT}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{manifest} must hold a JSON object; {FIX_HINT}")
    if data.get("format") != FORMAT:
        raise ValueError(f"{manifest}: format {data.get('format')!r} is not supported (expected {FORMAT})")
    kind = data.get("kind", "real")
    if kind not in KINDS:
        raise ValueError(f"{manifest}: kind {kind!r} is not one of {', '.join(KINDS)}")
    sam = data.get("sam")
    clip = data.get("clip")
    if not isinstance(sam, dict) or not isinstance(clip, dict):
        raise ValueError(f"{manifest}: needs 'sam' and 'clip' sections; {FIX_HINT}")
    files = data.get("files", {})
    if not isinstance(files, dict):
        raise ValueError(f"{manifest}: 'files' must map file names to sha256")

    def path_of(section: dict, key: str, where: str) -> Path:
        name = _need(section, key, str, where, manifest)
        p = root / name
        if not p.is_file():
            raise FileNotFoundError(f"model file {p} is missing (named by {manifest} '{where}.{key}'); "
                                    f"{FIX_HINT}")
        return p

    sam_cfg = SamConfig(
        encoder=path_of(sam, "encoder", "sam"), decoder=path_of(sam, "decoder", "sam"),
        input_size=_need(sam, "input_size", int, "sam", manifest),
        embed_size=_need(sam, "embed_size", int, "sam", manifest),
        pixel_mean=_triple(sam, "pixel_mean", "sam", manifest),
        pixel_std=_triple(sam, "pixel_std", "sam", manifest),
        decoder_window=path_of(sam, "decoder_window", "sam") if "decoder_window" in sam else None)
    if sam_cfg.input_size <= 0 or sam_cfg.input_size != 16 * sam_cfg.embed_size:
        raise ValueError(f"{manifest}: sam.input_size ({sam_cfg.input_size}) must be 16 x sam.embed_size "
                         f"({sam_cfg.embed_size})")
    clip_cfg = ClipConfig(
        visual=path_of(clip, "visual", "clip"), text=path_of(clip, "text", "clip"),
        image_size=_need(clip, "image_size", int, "clip", manifest),
        embed_dim=_need(clip, "embed_dim", int, "clip", manifest),
        context_length=_need(clip, "context_length", int, "clip", manifest),
        mean=_triple(clip, "mean", "clip", manifest), std=_triple(clip, "std", "clip", manifest),
        tokenizer=path_of(clip, "tokenizer", "clip"),
        logit_scale=_need(clip, "logit_scale", float, "clip", manifest))
    for key in ("image_size", "embed_dim", "context_length"):
        if getattr(clip_cfg, key) <= 0:
            raise ValueError(f"{manifest}: clip.{key} must be positive")
    in_use = {"sam_decoder": sam_cfg.decoder.name, "clip_visual": clip_cfg.visual.name}
    if sam_cfg.decoder_window is not None:
        in_use["sam_decoder_window"] = sam_cfg.decoder_window.name
    int8 = _int8_checks(data.get("int8", {}), in_use, manifest)
    if verify_hashes:
        for name, digest in files.items():
            p = root / name
            if not p.is_file():
                raise FileNotFoundError(f"model file {p} listed in {manifest} is missing; {FIX_HINT}")
            actual = sha256_file(p)
            if actual != digest:
                raise ValueError(f"model file {p} is corrupt or was changed: sha256 {actual[:12]}... "
                                 f"does not match the manifest's {str(digest)[:12]}...; {FIX_HINT}")
    return ModelSet(root=root, name=str(data.get("name", root.name)), kind=kind, sam=sam_cfg,
                    clip=clip_cfg, files=dict(files), int8=int8)


def _int8_checks(section: object, in_use: Dict[str, str], manifest: Path) -> Dict[str, Int8Check]:
    """Parse the optional ``int8`` section; it must agree with the graphs the manifest names."""
    if not isinstance(section, dict):
        raise ValueError(f"{manifest}: 'int8' must map graph names to their int8 check")
    out: Dict[str, Int8Check] = {}
    for graph, entry in section.items():
        where = f"int8.{graph}"
        if graph not in in_use or not isinstance(entry, dict):
            raise ValueError(f"{manifest}: '{where}' is not an int8 check of {', '.join(sorted(in_use))}")
        if not isinstance(entry.get("used"), bool):
            raise ValueError(f"{manifest}: '{where}.used' must be true or false, got {entry.get('used')!r}")
        check = Int8Check(graph=graph, file=_need(entry, "file", str, where, manifest), used=entry["used"],
                          metrics=_numbers(entry, "metrics", where, manifest),
                          bounds=_numbers(entry, "bounds", where, manifest),
                          calibration=str(entry.get("calibration", "")))
        if check.used != (in_use[graph] == check.file):
            raise ValueError(f"{manifest}: '{where}.used' is {check.used} but the set runs {in_use[graph]}; "
                             f"the manifest was edited by hand: export the set again")
        out[graph] = check
    return out


def _numbers(entry: dict, key: str, where: str, manifest: Path) -> Dict[str, float]:
    value = _need(entry, key, dict, where, manifest)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        raise ValueError(f"{manifest}: '{where}.{key}' must map names to numbers, got {value!r}")
    return {str(k): float(v) for k, v in value.items()}
