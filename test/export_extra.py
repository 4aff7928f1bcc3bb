"""Skip a test module when the export extra (torch, open_clip, segment-anything) is missing."""

import pytest


def require_export_extra():
    """Return (torch, tinyvlm_ros.models.export) with open_clip and segment-anything importable, else skip."""
    torch = pytest.importorskip("torch", reason="needs torch (the export extra)")
    try:
        from tinyvlm_ros.models import export
        export.import_open_clip()
        export.import_segment_anything()
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"export extra incomplete: {exc}", allow_module_level=True)
    return torch, export
