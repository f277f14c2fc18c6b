"""Data preparation: BraTS NIfTI volumes to a prepared 2D slice dataset, and a
synthetic BraTS-like generator for the demo and the tests."""
