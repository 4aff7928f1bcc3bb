"""Download registry checkpoints into the cache, verified and resumable.

Every request has a timeout (it bounds the connect and every read), downloads
go to ``<file>.part`` and are renamed into place only after the checksum
matches, and an interrupted ``.part`` is resumed with an HTTP Range request.
When the network is unreachable the caller gets a report naming each missing
file, the path it belongs at and how to provide it by hand.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, TextIO

from tinyvlm_ros.models.registry import (MODELS, ModelSpec, cache_dir, checkpoint_path, default_set_models,
                                         model_set_dir)

#: Seconds a connect or a single read may block.
DEFAULT_TIMEOUT_S = 30.0

_CHUNK = 1 << 16
_USER_AGENT = "tinyvlm_ros-fetch/1"


class ChecksumError(ValueError):
    """A downloaded file's sha256 differs from the registry's."""


@dataclass
class FetchOutcome:
    """What happened to one checkpoint: ``status`` is ok, cached or missing."""

    spec: ModelSpec
    path: Path
    status: str
    sha256: Optional[str] = None
    reason: str = ""


def sha256_file(path: os.PathLike) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _progress(total: Optional[int], initial: int, desc: str, enabled: bool):
    # tqdm is a runtime dependency, but a progress bar must never stop a download.
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not enabled, file=sys.stderr, leave=False)


def download(url: str, dest: os.PathLike, *, sha256: Optional[str] = None,
             timeout: float = DEFAULT_TIMEOUT_S, progress: bool = True) -> str:
    """Download ``url`` to ``dest`` atomically and return the file's sha256.

    Bytes go to ``dest + ".part"``; a ``.part`` left by an interrupted run is
    continued with a Range request (a server that ignores Range restarts it).
    The file is renamed to ``dest`` only when its sha256 equals ``sha256``
    (when given); on a mismatch the partial file is deleted and
    :class:`ChecksumError` is raised.  Network errors (``urllib.error.URLError``,
    ``TimeoutError``, ``OSError``) propagate with the ``.part`` kept for resuming.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # The .part is already complete (or longer than the file): verify it from scratch below.
            resp = None
        else:
            raise
    if resp is not None:
        with resp:
            resumed = have and resp.status == 206
            if not resumed:
                have = 0
            length = resp.headers.get("Content-Length")
            total = (int(length) + have) if length is not None else None
            bar = _progress(total, have, dest.name, progress)
            try:
                with open(part, "ab" if resumed else "wb") as out:
                    while True:
                        block = resp.read(_CHUNK)
                        if not block:
                            break
                        out.write(block)
                        if bar is not None:
                            bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and part.stat().st_size < total:
                raise urllib.error.URLError(
                    f"connection closed after {part.stat().st_size} of {total} bytes; "
                    f"run the command again to resume {part}")
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink()
        raise ChecksumError(f"{dest.name} from {url}: sha256 {digest} does not match the "
                            f"registry's {sha256}; the download was deleted, run fetch again "
                            f"(if it repeats, the upstream file changed: check the release page)")
    os.replace(part, dest)
    return digest


def fetch(specs: Sequence[ModelSpec], cache: Optional[os.PathLike] = None, *,
          timeout: float = DEFAULT_TIMEOUT_S, progress: bool = True,
          mirror: Optional[str] = None) -> List[FetchOutcome]:
    """Make sure each checkpoint is in the cache; download what is missing.

    ``mirror`` replaces each URL's directory with a base URL (a local mirror
    or test server).  A file already cached is verified when its sha256 is
    known.  Failures are returned as ``missing`` outcomes with the reason,
    never raised, so one unreachable host does not hide the other files.
    """
    outcomes: List[FetchOutcome] = []
    for spec in specs:
        path = checkpoint_path(spec, cache)
        url = spec.url if mirror is None else mirror.rstrip("/") + "/" + spec.filename
        if path.exists():
            if spec.sha256 is None:
                outcomes.append(FetchOutcome(spec, path, "cached"))
                continue
            digest = sha256_file(path)
            if digest == spec.sha256.lower():
                outcomes.append(FetchOutcome(spec, path, "cached", digest))
                continue
            # A wrong cached file is worse than none: move it aside so it is re-downloaded.
            os.replace(path, path.with_name(path.name + ".bad"))
        try:
            digest = download(url, path, sha256=spec.sha256, timeout=timeout, progress=progress)
            outcomes.append(FetchOutcome(spec, path, "ok", digest))
        except ChecksumError as exc:
            outcomes.append(FetchOutcome(spec, path, "missing", reason=str(exc)))
        except urllib.error.HTTPError as exc:
            outcomes.append(FetchOutcome(spec, path, "missing", reason=f"HTTP {exc.code} from {url}"))
        except urllib.error.URLError as exc:
            outcomes.append(FetchOutcome(spec, path, "missing", reason=f"{url}: {exc.reason}"))
        except (socket.timeout, TimeoutError) as exc:
            outcomes.append(FetchOutcome(spec, path, "missing",
                                         reason=f"{url}: no answer within {timeout:g} s ({exc})"))
        except OSError as exc:
            outcomes.append(FetchOutcome(spec, path, "missing", reason=f"{url}: {exc}"))
    return outcomes


def export_clip(specs: Sequence[ModelSpec]) -> ModelSpec:
    """Return the TinyCLIP to show the export command for: the default set's when fetched, else the first."""
    clips = [spec for spec in specs if spec.family == "clip"]
    default_clip = next(spec for spec in default_set_models() if spec.family == "clip")
    return default_clip if default_clip in clips or not clips else clips[0]


def export_command(clip: ModelSpec, cache: Optional[os.PathLike] = None) -> List[str]:
    """Lines of the ``tinyvlm models export`` command that turns the cached checkpoints into a model set."""
    ckpts = cache_dir(cache) / "checkpoints"
    return [f"  tinyvlm models export --sam {ckpts / MODELS['mobilesam'].filename} --clip "
            f"{clip.name.split('tinyclip-', 1)[1]} \\",
            f"      --clip-ckpt {ckpts / clip.filename} \\",
            f"      --out {model_set_dir(clip, cache)} --int8"]


def missing_report(outcomes: Sequence[FetchOutcome], cache: Optional[os.PathLike] = None) -> str:
    """Say which files are missing, where each belongs, and how to provide and export them."""
    missing = [o for o in outcomes if o.status == "missing"]
    if not missing:
        return ""
    root = cache_dir(cache)
    lines = [f"{len(missing)} checkpoint(s) missing from {root / 'checkpoints'}:"]
    for o in missing:
        lines.append(f"  {o.spec.name}: {o.path}  (~{o.spec.approx_mb:.0f} MB)")
        lines.append(f"      from {o.spec.url}")
        lines.append(f"      reason: {o.reason}")
    lines += [
        "To provide them without network access here, download each URL on a machine that has it",
        "(e.g. `curl -L -o FILE URL`) and copy it to the path shown, then run `tinyvlm models fetch`",
        "again to verify, and export the ONNX model set (needs the export extra: torch, open_clip):",
        *export_command(export_clip([o.spec for o in outcomes]), cache),
        "Without any checkpoint: `tinyvlm models make-test DIR` (known-answer models, no torch) or",
        "`tinyvlm models make-test DIR --random` (real architectures, random weights, for timing).",
    ]
    return "\n".join(lines)


def print_outcomes(outcomes: Sequence[FetchOutcome], stream: Optional[TextIO] = None) -> None:
    """Print one line per checkpoint; unknown checksums are shown so they can be recorded."""
    stream = stream or sys.stdout
    for o in outcomes:
        if o.status == "missing":
            continue
        note = ""
        if o.spec.sha256 is None:
            note = "  (no published sha256; this download's: " + (o.sha256 or "not computed") + ")"
        print(f"{o.status:7s} {o.spec.name}: {o.path}{note}", file=stream)
