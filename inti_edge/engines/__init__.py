"""One runner contract for PyTorch, ONNX Runtime and TensorRT: Polygraphy's.

Every runner is a Polygraphy ``BaseRunner``: a context manager (activate / deactivate) with
``infer(feed_dict) -> {output name: array}``, so Polygraphy's ``Comparator`` can drive any of them.

    pyt.TorchRunner        a checkpoint's PyTorch model (the FP32 reference)
    onnxrt.onnxrt_runner   an ONNX file in ONNX Runtime (Polygraphy's OnnxrtRunner)
    trt.trt_runner         a TensorRT plan (Polygraphy's TrtRunner), plugin library loaded
    runtime.open_runtime   the forms of an artifact as array -> array calls, for streaming

Only runners live here; the build that makes the artifacts is inti_edge/build.py.

``open_runner(path)`` picks the runner from the file: .pt checkpoint, .onnx, .plan / .engine.
"""

from __future__ import annotations

from pathlib import Path


class EngineError(RuntimeError):
    """An artifact cannot be run or built as asked (one-line reason)."""


def open_runner(path: str | Path, *, threads: int | None = None, plugins: list[str] | None = None, device: str = "cpu"):
    """A Polygraphy runner for a checkpoint (.pt), an ONNX file (.onnx) or a TensorRT plan (.plan/.engine)."""
    path = Path(path)
    if not path.exists():
        raise EngineError(f"no artifact at {path}")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth", ".ckpt"):
        from .pyt import TorchRunner

        return TorchRunner.from_checkpoint(path, device=device)
    if suffix == ".onnx":
        from .onnxrt import onnxrt_runner

        return onnxrt_runner(path, threads=threads)
    if suffix in (".plan", ".engine"):
        from .trt import trt_runner

        return trt_runner(path, plugins=plugins or [])
    raise EngineError(f"{path.name}: unknown artifact type (expected .pt, .onnx, .plan or .engine)")
