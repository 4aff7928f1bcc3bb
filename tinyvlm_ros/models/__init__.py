"""Model sets: manifests, known-answer test models, and (branch ``models``) fetch/export tools.

A model set is a directory with ``manifest.json`` and the four ONNX graphs
described in ``docs/models.md``.
"""
