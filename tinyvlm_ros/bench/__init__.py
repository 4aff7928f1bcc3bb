"""Benchmarks: the ONNX pipeline (``bench pipeline``) and bag replay (``bench bag``)."""
