"""Model registry, download, ONNX export and test-model generation."""
