"""Where the firmware sources live.

From a source checkout this is ``<repo>/firmware``.  An installed package (colcon's
``install/``) does not carry the C sources: ``TINYVLM_FIRMWARE_DIR`` or
``TINYVLM_SOURCE_DIR`` (set by the package's CMake tests) point at the checkout, else
the ``source_dir.txt`` the build installs next to the package does.
"""

from __future__ import annotations

import os
from pathlib import Path


def firmware_dir() -> Path:
    """Return the ``firmware/`` directory (Makefile, sources, default model)."""
    env = os.environ.get("TINYVLM_FIRMWARE_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2] / "firmware"
    if (here / "Makefile").exists():
        return here
    src = os.environ.get("TINYVLM_SOURCE_DIR")
    if src and (Path(src) / "firmware" / "Makefile").exists():
        return Path(src) / "firmware"
    record = Path(__file__).resolve().parents[1] / "source_dir.txt"
    if record.is_file():
        built_from = Path(record.read_text().strip()) / "firmware"
        if (built_from / "Makefile").exists():
            return built_from
    return here
