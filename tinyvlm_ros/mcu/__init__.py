"""Microcontroller engine at run time: protocol, link, blobs, bit-exact reference, backend and CLI.

Training the encoder lives in :mod:`tinyvlm_ros.distill`; nothing here imports torch.
"""
