"""Fixtures shared by tests, demos and benchmarks: generated scenes, sequences and models."""
