"""The TokenInterpolation module as the plugin's fields (``plugin.spec`` names): what the ONNX node
carries as attributes and the CUDA kernels take as arguments."""

from __future__ import annotations

from typing import Any

from . import spec as plugin_spec


def module_fields(module) -> dict[str, Any]:
    """The TokenInterpolation module as the plugin's fields (``plugin.spec`` names).

    Ints and floats as Python scalars, ``dilations`` as a list, weights as float32 tensors on the
    module's device in the plugin's layout: w_in = proj_in.weight.T (2C, D), b_in (D),
    dw_weight (S, D, 3, 3), dw_bias (S, D), w_out = proj_out.weight.T (D*(1+S), 2G), b_out (2G).
    """
    import torch

    from ..model.config import EPS

    cfg = module.cfg
    f32 = dict(dtype=torch.float32)
    return {
        "grid_h": int(module.grid[0]),
        "grid_w": int(module.grid[1]),
        "groups": int(cfg.groups),
        "softmax": 1 if cfg.normalize == "softmax" else 0,
        "cls_mean": 1 if cfg.cls_mode == "mean" else 0,
        "dilations": [int(d) for d in cfg.dilations],
        "eps": float(EPS),
        "w_in": module.proj_in.weight.detach().t().to(**f32).contiguous(),
        "b_in": module.proj_in.bias.detach().to(**f32).contiguous(),
        "dw_weight": module.dw_weight.detach().to(**f32).contiguous(),
        "dw_bias": module.dw_bias.detach().to(**f32).contiguous(),
        "w_out": module.proj_out.weight.detach().t().to(**f32).contiguous(),
        "b_out": module.proj_out.bias.detach().to(**f32).contiguous(),
    }


def node_attributes(op) -> dict[str, Any]:
    """The contract attributes of one ``TokenInterpolation`` module (``kernels.module_fields``, as numpy)."""
    attrs = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in module_fields(op).items()}
    expected = set(plugin_spec.INT_FIELDS + plugin_spec.INTS_FIELDS + plugin_spec.FLOAT_FIELDS + plugin_spec.WEIGHT_FIELDS)
    if set(attrs) != expected:
        raise ValueError(f"module fields {sorted(attrs)} differ from the plugin contract {sorted(expected)}")
    return attrs


