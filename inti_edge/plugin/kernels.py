"""CUDA fast path of TokenInterpolation: the TensorRT plugin's kernels as a PyTorch extension.

The extension is built on first use (``torch.utils.cpp_extension.load``, JIT) from
``plugins/token_interpolation/`` (``SOURCES``) - the same sources as ``libinti_plugins.so`` - plus a
small binding. It is forward-only (inference): no autograd.

    from inti_edge.plugin import kernels
    if kernels.available():
        y = kernels.token_interpolation(x, module)   # == module(x), x (P, 2, N, C) on a CUDA device

Paths: ``"auto"`` (the split path: streaming kernels, sm_80+, projection on tensor cores, the default
of every dtype; the fallback where it cannot run), ``"fallback"`` (any GPU, three kernels). Variants:
``"auto"``, ``"split"`` (the split path, else the fallback; plan path ``"split"``). The fused and tile
paths are no longer built (plugins/README.md); ``cluster`` was the fused path's and is not read.
Set ``INTI_KERNELS_VERBOSE=1`` to see the build.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Any

import torch

from .fields import module_fields

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "token_interpolation"
SOURCES = ("torch_binding.cpp", "ti_launch.cpp", "ti_split.cu", "ti_fallback.cu")
_PATHS = {"auto": 0, "fallback": 2}
_VARIANTS = {"auto": 0, "split": 3}

_lock = threading.Lock()
_ext: Any = None
_error: str | None = None
_prepared: "weakref.WeakKeyDictionary[torch.nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _arch_flags() -> list[str]:
    flags = []
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        flag = f"-gencode=arch=compute_{major}{minor},code=sm_{major}{minor}"
        if flag not in flags:
            flags.append(flag)
    return flags


def _cuda_dirs() -> tuple[list[str], list[str]]:
    """Include / library dirs of the CUDA toolkit, for when torch guesses CUDA_HOME from a wrapper nvcc."""
    from torch.utils import cpp_extension

    homes = [os.environ.get("CUDA_HOME"), cpp_extension.CUDA_HOME, "/usr/local/cuda"]
    for home in homes:
        if home and (Path(home) / "include" / "cuda_runtime_api.h").is_file():
            lib = Path(home) / "lib64"
            return [str(Path(home) / "include")], ([f"-L{lib}"] if lib.is_dir() else [])
    return [], []


def _load():
    """The compiled extension, built once per process (torch caches the build on disk)."""
    global _ext, _error
    with _lock:
        if _ext is not None or _error is not None:
            return _ext
        if not torch.cuda.is_available():
            _error = "no CUDA device"
            return None
        missing = [s for s in SOURCES if not (PLUGIN_DIR / s).is_file()]
        if missing:
            _error = f"kernel sources not found in {PLUGIN_DIR}: {missing}"
            return None
        try:
            from torch.utils.cpp_extension import load

            cuda_inc, cuda_lib = _cuda_dirs()
            _ext = load(
                name="inti_token_interpolation",
                sources=[str(PLUGIN_DIR / s) for s in SOURCES],
                extra_include_paths=[str(PLUGIN_DIR), *cuda_inc],
                extra_ldflags=cuda_lib,
                extra_cflags=["-O3"],
                extra_cuda_cflags=["-O3", *_arch_flags()],
                verbose=os.environ.get("INTI_KERNELS_VERBOSE") == "1",
            )
        except Exception as e:  # compiler missing, build failure: the model falls back to PyTorch
            _error = f"{type(e).__name__}: {e}"
            _ext = None
        return _ext


def available() -> bool:
    """True if a CUDA device is present and the extension builds / loads."""
    return _load() is not None


def load_error() -> str | None:
    """Why ``available()`` is False (None if it is True or was not asked yet)."""
    _load()
    return _error


def params_key(params) -> tuple:
    """What identifies the values of ``params`` now: storage and in-place version of each. Inference tensors
    (weights made under ``torch.inference_mode``) keep no version counter: their storage alone."""
    return tuple((p.data_ptr(), -1 if p.is_inference() else p._version) for p in params)


def _fields_for(module, device: torch.device) -> dict[str, Any]:
    """module_fields on `device`, cached until a parameter changes (in place or replaced)."""
    params = (module.proj_in.weight, module.proj_in.bias, module.dw_weight, module.dw_bias,
              module.proj_out.weight, module.proj_out.bias)
    key = (device, params_key(params))
    hit = _prepared.get(module)
    if hit is not None and hit[0] == key:
        return hit[1]
    fields = module_fields(module)
    fields = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in fields.items()}
    _prepared[module] = (key, fields)
    return fields


def token_interpolation(x: torch.Tensor, module, *, path: str = "auto", cluster: int = 0,
                        variant: str = "auto") -> torch.Tensor:
    """``module(x)`` through the CUDA kernels. x: (P, 2, N, C) float32 / float16 / bfloat16, CUDA.

    ``module`` is an ``inti_edge.model.interpolation.TokenInterpolation``; its parameters are read
    (as float32) and cached per module until they change. Forward only.
    """
    ext = _load()
    if ext is None:
        raise RuntimeError(f"TokenInterpolation CUDA kernels unavailable: {_error}")
    if x.requires_grad and torch.is_grad_enabled():
        raise RuntimeError("kernels.token_interpolation is forward-only; call it under torch.no_grad()")
    _check_options(path, variant)
    _check_input(x, module)
    f = _fields_for(module, x.device)
    return ext.token_interpolation(
        x, f["w_in"], f["b_in"], f["dw_weight"], f["dw_bias"], f["w_out"], f["b_out"],
        f["grid_h"], f["grid_w"], f["dilations"], bool(f["softmax"]), bool(f["cls_mean"]), f["eps"],
        _PATHS[path], int(cluster), _VARIANTS[variant],
    )


_op: Any = None  # the torch.library custom op (None: not registered yet; False: this torch cannot)


def custom_op():
    """``torch.ops.inti.token_interpolation``: the kernel as a custom op with a fake (meta) kernel, so
    ``torch.compile`` traces through it (no graph break) and CUDA graphs capture it. None where this
    torch lacks ``torch.library.custom_op`` (< 2.4) or the kernels are unavailable."""
    global _op
    if _op is None:
        if _load() is None or not hasattr(torch.library, "custom_op"):
            _op = False
            return None

        @torch.library.custom_op("inti::token_interpolation", mutates_args=())
        def op(x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor, dw_weight: torch.Tensor, dw_bias: torch.Tensor,
               w_out: torch.Tensor, b_out: torch.Tensor, grid_h: int, grid_w: int, dilations: list[int], softmax: bool,
               cls_mean: bool, eps: float) -> torch.Tensor:
            return _ext.token_interpolation(x.contiguous(), w_in, b_in, dw_weight, dw_bias, w_out, b_out, grid_h, grid_w,
                                            dilations, softmax, cls_mean, eps, 0, 0, 0)

        @op.register_fake
        def _(x, w_in, b_in, dw_weight, dw_bias, w_out, b_out, grid_h, grid_w, dilations, softmax, cls_mean, eps):
            return x.new_empty((x.shape[0], x.shape[2], x.shape[3]))

        _op = op
    return _op or None


def token_interpolation_traced(x: torch.Tensor, module) -> torch.Tensor:
    """``module(x)`` through the custom op, the fields made with tensor ops (what ``torch.compile`` traces:
    the conversions become part of the compiled graph). ``custom_op()`` must have returned the op."""
    f = module_fields(module)
    return _op(x, f["w_in"], f["b_in"], f["dw_weight"], f["dw_bias"], f["w_out"], f["b_out"], f["grid_h"], f["grid_w"],
               f["dilations"], bool(f["softmax"]), bool(f["cls_mean"]), f["eps"])


def _check_options(path: str, variant: str) -> None:
    if path not in _PATHS:
        raise ValueError(f"path must be one of {sorted(_PATHS)}, not {path!r}")
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {sorted(_VARIANTS)}, not {variant!r}")


def _check_input(x: torch.Tensor, module) -> None:
    H, W = module.grid
    if not x.is_cuda:
        raise ValueError("x must be a CUDA tensor")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"x must be float32, float16 or bfloat16, not {x.dtype}")
    if x.dim() != 4 or x.shape[1] != 2 or x.shape[2] != 1 + H * W or x.shape[3] != module.width:
        raise ValueError(f"x must be (P, 2, {1 + H * W}, {module.width}), not {tuple(x.shape)}")


def plan(x: torch.Tensor, module, *, path: str = "auto", cluster: int = 0, variant: str = "auto") -> dict:
    """The configuration ``token_interpolation`` takes for x: path, variant, cluster size, shared memory, ..."""
    ext = _load()
    if ext is None:
        raise RuntimeError(f"TokenInterpolation CUDA kernels unavailable: {_error}")
    _check_options(path, variant)
    _check_input(x, module)
    f = _fields_for(module, x.device)
    return dict(ext.plan(x, f["b_in"], f["b_out"], f["grid_h"], f["grid_w"], f["dilations"], _PATHS[path], int(cluster),
                         _VARIANTS[variant]))
