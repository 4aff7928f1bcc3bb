"""Host segment-then-match engine: MobileSAM masks scored by TinyCLIP, on ONNX Runtime."""
