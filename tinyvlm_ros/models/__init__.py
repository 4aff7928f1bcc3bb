"""Model sets: registry, download, export to ONNX, and manifests.

A model set is a directory with ``manifest.json`` and the four ONNX graphs described in
``docs/models.md``.  Generated test sets live in :mod:`tinyvlm_ros.testing.models`.
"""
