"""inti-edge: train, export, quantize, build and run InTI video models on NVIDIA GPUs and Jetson."""

__version__ = "0.1.0"
