"""Microcontroller engine: firmware protocol, link, blobs, bit-exact reference, backend and CLI."""
