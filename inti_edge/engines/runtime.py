"""Inference runtimes for streaming: each form of an artifact as a plain ``array -> array`` call.

    rt = open_runtime(open_artifact("out/int8-cpu"), backend="auto", device="auto")
    emb = rt.encoder(units)        # (B, 2^s, 3, S, S) float32 -> (B, K, E) float32
    logits = rt.head(emb_windows)  # (B, U, K, E) -> (B, classes)
    logits = rt.model(clips)       # (B, T, 3, S, S) -> (B, classes)   (the whole-window re-run)

Backends:
- ``tensorrt``: the artifact's plans through Polygraphy's ``TrtRunner`` (buffers, CUDA streams via
  cuda-python), plugin library loaded first; batches are cut to the plan's profile maximum.
- ``onnxruntime``: the ONNX files in an ``InferenceSession`` (CUDA provider when present and asked
  for, else CPU).
- ``torch``: a checkpoint's model. CPU: float32. CUDA: bfloat16 weights and one CUDA graph per batch
  size bucket (1, 2, 4, ...), replayed with the input copied into its static buffer: the encoder
  and head shapes are fixed, so launch overhead, which dominates at stream batch sizes, goes away.
- ``auto``: TensorRT where the artifact has plans and ``tensorrt`` imports, else ONNX Runtime where
  it has ONNX files, else torch (a checkpoint).

The ONNX Runtime and TensorRT paths import no torch (tested), so a deploy-only install streams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..artifact import IO_NAMES, Artifact, ArtifactError, input_shape
from . import EngineError

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
DEVICES = ("auto", "cpu", "cuda")


class Graph:
    """One form on one backend: ``graph(x) -> y`` (float32 numpy), batches cut to ``max_batch``."""

    def __init__(self, form: str, name: str, run: Callable[[np.ndarray], np.ndarray], max_batch: int,
                 close: Callable[[], None] | None = None):
        self.form, self.name, self.max_batch = form, name, max(1, int(max_batch))
        self._run, self._close = run, close
        self.calls, self.seconds = 0, 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        if len(x) <= self.max_batch:
            y = self._run(x)
        else:
            y = np.concatenate([self._run(x[i : i + self.max_batch]) for i in range(0, len(x), self.max_batch)])
        self.calls += 1
        self.seconds += time.perf_counter() - t
        return y

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __repr__(self) -> str:
        return f"Graph({self.form}, {self.name}, max_batch={self.max_batch})"


@dataclass
class Runtime:
    """The graphs of one artifact on one backend. ``encoder`` + ``head``: incremental streaming;
    ``model``: the whole window at once. Any may be None where the artifact lacks that form."""

    backend: str
    device: str
    encoder: Graph | None = None
    head: Graph | None = None
    model: Graph | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def incremental(self) -> bool:
        return self.encoder is not None and self.head is not None

    def describe(self) -> str:
        forms = [g.form for g in (self.encoder, self.head, self.model) if g is not None]
        return f"{self.backend} on {self.device} ({', '.join(forms)})"

    def close(self) -> None:
        for g in (self.encoder, self.head, self.model):
            if g is not None:
                g.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- choosing ---------------------------------------------------------------------------------------
def _tensorrt_ok() -> bool:
    from .trt import version

    return version() is not None


def _ort_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def choose_backend(art: Artifact, backend: str = "auto", device: str = "auto") -> str:
    """The backend ``auto`` resolves to for this artifact (or a one-line error for an impossible ask)."""
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise EngineError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if backend == "auto":
        if art.plans and device != "cpu" and _tensorrt_ok():
            return "tensorrt"
        if art.onnx:
            return "onnxruntime"
        if art.checkpoint is not None:
            return "torch"
        raise EngineError(f"{art.path}: nothing runnable here (plans need TensorRT, which does not import)")
    if backend == "tensorrt":
        if not art.plans:
            raise EngineError(f"{art.path}: no TensorRT plans (*.plan); build them with `inti-edge build` where "
                              "TensorRT is installed, or use --backend onnxruntime")
        if device == "cpu":
            raise EngineError("--backend tensorrt runs on a GPU; drop --device cpu")
    elif backend == "onnxruntime":
        if not art.onnx:
            raise EngineError(f"{art.path}: no ONNX files; export the checkpoint first (`inti-edge export CKPT -o DIR`) "
                              "or use --backend torch")
    elif art.checkpoint is None:
        src = art.onnx.get("model") or next(iter(art.onnx.values()), None)
        hint = f" (the checkpoint it came from: {art.model.source})" if getattr(art.model, "source", "") else ""
        raise EngineError(f"--backend torch needs a checkpoint (.pt), not {src or art.path}{hint}")
    return backend


def open_runtime(art: Artifact, backend: str = "auto", device: str = "auto", *, threads: int | None = None,
                 forms: tuple[str, ...] = ("encoder", "head", "model"), plugin: str | None = None,
                 max_batch: int = 64) -> Runtime:
    """The graphs of ``forms`` that ``art`` has, on the chosen backend (see the module docstring)."""
    backend = choose_backend(art, backend, device)
    if backend == "tensorrt":
        return _trt_runtime(art, forms, plugin)
    if backend == "onnxruntime":
        return _ort_runtime(art, forms, device, threads)
    return _torch_runtime(art, forms, device, max_batch)


# --- ONNX Runtime -----------------------------------------------------------------------------------
def _ort_runtime(art: Artifact, forms, device: str, threads: int | None) -> Runtime:
    from .onnxrt import session

    cuda = device in ("auto", "cuda") and _ort_cuda()
    if device == "cuda" and not cuda:
        raise EngineError("--device cuda with ONNX Runtime needs onnxruntime-gpu (CUDAExecutionProvider is not available)")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    rt = Runtime("onnxruntime", "cuda" if cuda else "cpu")
    for form in forms:
        path = art.onnx.get(form)
        if path is None:
            continue
        sess = session(path, threads, providers=providers, fp16=art.precision == "fp16", spin=False)
        in_name, out_name = IO_NAMES[form]

        def run(x, sess=sess, in_name=in_name):
            return sess.run(None, {in_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        setattr(rt, form, Graph(form, f"onnxruntime:{path.name}", run, max_batch=1024))
    _require_forms(rt, art)
    return rt


# --- TensorRT ---------------------------------------------------------------------------------------
def _trt_runtime(art: Artifact, forms, plugin: str | None) -> Runtime:
    from .trt import find_plugin_library, trt_runner

    lib = find_plugin_library(plugin)
    rt = Runtime("tensorrt", "cuda")
    if lib is None:
        rt.notes.append("no plugin library found: plans built from the ONNX local function run without it")
    for form in forms:
        path = art.plans.get(form)
        if path is None:
            continue
        runner = trt_runner(path, plugins=[str(lib)] if lib else [])
        try:
            runner.activate()
        except Exception as e:  # noqa: BLE001 - TensorRT's own errors: say what usually causes them
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise EngineError(f"TensorRT could not load {path} ({msg}): plans only run on the TensorRT version and "
                              "GPU they were built for, with their plugin library; rebuild it here") from None
        in_name, out_name = IO_NAMES[form]
        engine = runner.engine
        try:
            max_b = int(engine.get_tensor_profile_shape(in_name, 0)[2][0])
        except Exception:  # noqa: BLE001 - a static-shape plan has no profile: its fixed batch
            max_b = int(engine.get_tensor_shape(in_name)[0])

        def run(x, runner=runner, in_name=in_name, out_name=out_name):
            return np.asarray(runner.infer({in_name: np.ascontiguousarray(x, dtype=np.float32)})[out_name], dtype=np.float32)

        setattr(rt, form, Graph(form, f"tensorrt:{path.name}", run, max_batch=max_b, close=runner.deactivate))
    _require_forms(rt, art)
    return rt


# --- PyTorch ----------------------------------------------------------------------------------------
def _torch_runtime(art: Artifact, forms, device: str, max_batch: int) -> Runtime:
    try:
        import torch
    except ImportError:
        raise EngineError("--backend torch needs PyTorch (pip install 'inti-edge[train]'); "
                          "or run an ONNX export with ONNX Runtime") from None
    from ..model.factory import CheckpointError, load_checkpoint

    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise EngineError("--device cuda: PyTorch sees no CUDA device")
    try:
        model, _ = load_checkpoint(art.checkpoint)
    except CheckpointError as e:
        raise ArtifactError(str(e)) from None
    dev = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    model = model.to(dev, dtype).eval()
    encoder, head = model.split()
    modules = {"encoder": encoder, "head": head, "model": model}
    rt = Runtime("torch", dev.type)
    if cuda:
        kernel = bool(model.interps) and model.use_kernels()  # the plugin's CUDA kernel for the interpolation
        rt.notes.append("bfloat16 weights, CUDA graphs per batch bucket" + (", the plugin kernel" if kernel else ""))
    for form in forms:
        shape = input_shape(model.cfg, form)[1:]
        run = _CudaGraphs(modules[form], shape, dtype, dev, max_batch, model=model) if cuda else _eager(modules[form], dev)
        setattr(rt, form, Graph(form, f"torch:{Path(art.checkpoint).name}", run, max_batch=max_batch))
    return rt


def _eager(module, dev):
    import torch

    def run(x):
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)).float().cpu().numpy()

    return run


class _CudaGraphs:
    """``module`` replayed from CUDA graphs captured per batch bucket (powers of 2 up to max_batch).

    Each bucket owns pinned host buffers for its input and output, so a call is one host copy into
    pinned memory, an asynchronous upload, the replay, an asynchronous download and one sync."""

    def __init__(self, module, shape: tuple[int, ...], dtype, device, max_batch: int, model=None):
        self.module, self.shape, self.dtype, self.device = module, tuple(shape), dtype, device
        self.model = model  # where a capture with the plugin kernel fails, the reference path is captured instead
        top = max(1, int(max_batch))
        self.buckets = [1 << i for i in range(top.bit_length()) if (1 << i) < top] + [top]
        self.graphs: dict[int, tuple] = {}

    def _graph(self, b: int):
        if b not in self.graphs:
            try:
                self.graphs[b] = self._capture(b)
            except RuntimeError:
                if self.model is None or not any(op.fast_path for op in self.model.interps):
                    raise
                self.model.use_kernels(False)
                self.graphs[b] = self._capture(b)
        return self.graphs[b]

    def _capture(self, b: int):
        import torch

        x = torch.zeros((b, *self.shape), dtype=self.dtype, device=self.device)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):  # warm-up outside the capture (allocator, lazy inits)
                self.module(x)
        torch.cuda.current_stream().wait_stream(stream)
        g = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(g, capture_error_mode="thread_local"):
            y = self.module(x).float()
        host_in = torch.empty((b, *self.shape), dtype=torch.float32, pin_memory=True)
        host_out = torch.empty(tuple(y.shape), dtype=torch.float32, pin_memory=True)
        return g, x, y, host_in, host_out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        n = len(x)
        b = next(k for k in self.buckets if k >= n)
        g, xin, y, host_in, host_out = self._graph(b)
        np.copyto(host_in.numpy()[:n], x, casting="same_kind")
        with torch.inference_mode():
            xin[:n].copy_(host_in[:n], non_blocking=True)
            g.replay()
            host_out[:n].copy_(y[:n], non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return host_out.numpy()[:n].copy()


def _require_forms(rt: Runtime, art: Artifact) -> None:
    if rt.encoder is None and rt.model is None:
        have = ", ".join(sorted(set(art.onnx) | set(art.plans))) or "nothing"
        raise EngineError(f"{art.path}: neither the encoder/head pair nor the whole model on {rt.backend} (has: {have})")
    if (rt.encoder is None) != (rt.head is None):
        which = "head" if rt.head is None else "encoder"
        rt.notes.append(f"no {which} form: windows re-run the whole model")
        rt.encoder = rt.head = None
