"""Training of the MCU's image encoder (torch): Matryoshka distillation, int8 quantization, evaluation.

Imports the MCU runtime (:mod:`tinyvlm_ros.mcu`), never the reverse: a robot that only runs the
engine needs neither torch nor this package.

* :mod:`.data`: training samples (teacher region embeddings of generated scenes or photos).
* :mod:`.student`: the float twin of the firmware's encoder.
* :mod:`.objective`: the loss and the prefix metrics.
* :mod:`.train`: ``tinyvlm mcu distill``.
* :mod:`.quantize`: coordinated int8 quantization and export of the trained model directory.
* :mod:`.evaluate`: the benchmark of a trained model (host reference, firmware under QEMU).
"""
