"""Make the test helpers importable and pick an isolated DDS domain per run."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# colcon test sets this (CMakeLists.txt); a plain pytest run gets the same
os.environ.setdefault("TINYVLM_SOURCE_DIR", str(Path(__file__).resolve().parents[1]))
