"""Test fixtures shared by the tests, the demo and the benchmarks: never used by the runtime.

* :mod:`.models`: generated known-answer ONNX model sets (colour and shape words).
* :mod:`.scenes`: generated table-top scenes with exact boxes and masks.
* :mod:`.sequences`: generated moving scenes (sliding, crossing, occlusion, camera pan) with identities.
"""
