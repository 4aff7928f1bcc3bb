"""Microcontroller engine at run time: protocol, link, blobs, flash vocabulary, clock sync, reference, CLI.

Training the encoder lives in :mod:`tinyvlm_ros.distill`; nothing here imports torch.
"""
