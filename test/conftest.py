"""Make the test helpers importable and pick an isolated DDS domain per run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
