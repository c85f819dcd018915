"""ONNX export: the whole model, the streaming pair (encoder / head), and the TokenInterpolation node.

    checkpoint.pt --export--> DIR/model.onnx      clip (B, T, 3, S, S)  -> logits (B, classes)
                                         DIR/encoder.onnx    unit (B, 2^s, 3, S, S) -> embedding (B, K, E)
                                         DIR/head.onnx       units (B, U, K, E)     -> logits (B, classes)
                                         (--plugin-only)     model.plugin.onnx, encoder.plugin.onnx

Every interpolation is ONE node ``inti::TokenInterpolation`` with its decomposition as an ONNX local
function (``plugin.node``).

Batch is dynamic; everything else is fixed by the config. The config, class names and preprocessing
are stored in the ONNX metadata (``inti.*`` keys), so later stages need only the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import onnx

from . import __version__
from .artifact import (
    FORMS,
    IO_NAMES,
    META_BACKEND,
    META_CLASSES,
    META_CONFIG,
    META_FORM,
    META_FORMAT,
    META_INTERP,
    META_PRECISION,
    META_PREPROCESS,
    META_SAMPLING,
    META_SOURCE,
    META_SOURCE_SHA,
    ArtifactError,
    file_sha256,
    save_onnx,
    set_metadata,
)
from .plugin import spec as plugin_spec
from .plugin.fields import node_attributes
from .plugin.node import drop_functions, ensure_opset, interpolation_nodes, local_function, make_plugin_node, to_plugin_only

OPSET = 18  # LayerNormalization (17+) stays whole; TensorRT 10.3 (JetPack 6) parses opset 18
FORMAT_VERSION = "1"
MAX_BATCH = 1024  # upper bound of the dynamic batch dimension (only an export-time symbol bound)


class ExportError(ArtifactError):
    """The model cannot be exported as asked (one-line reason)."""


# --- torch -> ONNX ---------------------------------------------------------------------------------
def _node_module(interp, index: int):
    """A stand-in for one TokenInterpolation module that traces as the single custom node."""
    import torch
    from torch import nn

    from .model.interpolation import TokenInterpolation

    class InterpolationNode(nn.Module):
        merge_frames = TokenInterpolation.merge_frames  # same pairing, calls our forward

        def __init__(self):
            super().__init__()
            self.inner = interp

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (P, 2, N, C) -> (P, N, C)
            P, _, N, C = x.shape
            return torch.onnx.ops.symbolic(
                f"{plugin_spec.PLUGIN_NAMESPACE}::{plugin_spec.PLUGIN_NAME}",
                (x,),
                {},
                dtype=x.dtype,
                shape=(P, N, C),
                version=1,
                metadata_props={"inti.interp_index": str(index)},
            )

    return InterpolationNode().eval()


@contextlib.contextmanager
def _as_plugin_nodes(model) -> Iterator[list]:
    """Temporarily swap the model's interpolation modules for single-node stand-ins."""
    from torch import nn

    originals = model.interps
    model.interps = nn.ModuleList(_node_module(m, i) for i, m in enumerate(originals))
    try:
        yield list(originals)
    finally:
        model.interps = originals


def _torch_export(module, example, input_name: str, output_name: str, opset: int) -> onnx.ModelProto:
    import torch

    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # the exporter prints progress lines
        prog = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=({0: batch},),
            optimize=True,
            verbose=False,
        )
    return prog.model_proto




def _finish(proto: onnx.ModelProto, interps: list, cfg, interpolation: str, opset: int) -> onnx.ModelProto:
    """Give the exported placeholder nodes their contract attributes; add the local function."""
    found = 0
    renamed = {}
    for node in proto.graph.node:
        if node.domain == plugin_spec.PLUGIN_NAMESPACE and node.op_type == plugin_spec.PLUGIN_NAME:
            props = {p.key: p.value for p in node.metadata_props}
            index = int(props["inti.interp_index"])
            out = f"/interps.{index}/merged"  # the exporter names it "_symbolic"
            renamed[node.output[0]] = out
            new = make_plugin_node(f"/interps.{index}/{plugin_spec.PLUGIN_NAME}", node.input[0], out,
                                   node_attributes(interps[index]))
            node.CopyFrom(new)
            found += 1
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    for vi in proto.graph.value_info:
        if vi.name in renamed:
            vi.name = renamed[vi.name]
    if found != len(interps) and interps:
        raise ExportError(f"expected {len(interps)} interpolation nodes in the export, found {found}")
    drop_functions(proto)
    if found:
        ensure_opset(proto, plugin_spec.PLUGIN_NAMESPACE, 1)
        if interpolation == "function":
            proto.functions.append(local_function(cfg.interpolation, opset))
    return proto


def _name_nodes_by_module(proto: onnx.ModelProto) -> None:
    """Name nodes after the module that made them ("/visual.transformer.resblocks.3.mlp.c_fc/MatMul"), so
    --exclude patterns and the gate's layer report speak the model's language."""
    seen: dict[str, int] = {}
    for node in proto.graph.node:
        props = {p.key: p.value for p in node.metadata_props}
        scopes = props.get("pkg.torch.onnx.name_scopes")
        if not scopes or node.domain == plugin_spec.PLUGIN_NAMESPACE:
            continue
        try:
            path = [s for s in json.loads(scopes.replace("'", '"')) if s]
        except json.JSONDecodeError:
            continue
        module = path[-2] if len(path) >= 2 else ""
        base = f"/{module}/{node.op_type}" if module else f"/{node.op_type}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        node.name = base if k == 0 else f"{base}_{k}"


def export_module(
    model,
    form: str,
    classes: list[str],
    preprocess: dict[str, Any],
    interpolation: str = "function",
    opset: int = OPSET,
    source: str = "",
    source_sha256: str = "",
    sampling: dict[str, Any] | None = None,
) -> onnx.ModelProto:
    """One form of ``model`` (an InTIVideoModel in eval mode) as an ONNX ModelProto.

    form: "model" | "encoder" | "head"; interpolation: "function" (node + local function),
    "plugin-only" (node only) or "plain" (the decomposition PyTorch exports, no custom node).
    """
    import torch

    if form not in FORMS:
        raise ExportError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    if interpolation not in ("function", "plugin-only", "plain"):
        raise ExportError(f"unknown interpolation form {interpolation!r}")
    if opset < 17:
        raise ExportError("opset must be >= 17 (LayerNormalization is kept whole)")
    cfg = model.cfg
    S, E = cfg.vision.image_size, cfg.vision.embed_dim
    batch = 2  # examples with batch 2 keep the batch dimension symbolic
    if form == "model":
        module, example = model, torch.zeros(batch, cfg.frames, 3, S, S)
    elif form == "encoder":
        module, example = model.split()[0], torch.zeros(batch, cfg.unit_frames, 3, S, S)
    else:
        module, example = model.split()[1], torch.zeros(batch, cfg.units, cfg.unit_tokens, E)
    model.eval()
    module.eval()
    with torch.no_grad():
        if interpolation == "plain" or form == "head":
            proto = _torch_export(module, example, *IO_NAMES[form], opset)
            interps = []
        else:
            with _as_plugin_nodes(model) as interps:
                proto = _torch_export(module, example, *IO_NAMES[form], opset)
    proto = _finish(proto, interps, cfg, interpolation, opset)
    _name_nodes_by_module(proto)
    # the exporter's per-node metadata (source lines, module paths) is noise in a shipped file
    for node in proto.graph.node:
        del node.metadata_props[:]
    proto.producer_name, proto.producer_version = "inti-edge", __version__
    proto.doc_string = f"InTI video model {cfg.name} ({form}), {len(classes)} classes"
    del proto.metadata_props[:]
    set_metadata(
        proto,
        **{
            META_FORMAT: FORMAT_VERSION,
            META_CONFIG: cfg.to_json(),
            META_CLASSES: json.dumps(list(classes)),
            META_PREPROCESS: json.dumps(preprocess, sort_keys=True),
            META_FORM: form,
            META_INTERP: interpolation if interps else "none",
            META_PRECISION: "fp32",
            META_BACKEND: "any",
            META_SOURCE: source,
            META_SOURCE_SHA: source_sha256,
            **({META_SAMPLING: json.dumps(sampling, sort_keys=True)} if sampling else {}),
        },
    )
    onnx.checker.check_model(proto)
    return proto


def export(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    plugin_only: bool = False,
    plain: bool = False,
    streaming: bool = True,
    opset: int = OPSET,
    progress=None,
) -> dict[str, Path]:
    """Export a checkpoint to ``out_dir``: model.onnx (+ encoder.onnx, head.onnx with ``streaming``).

    ``plugin_only`` also writes ``*.plugin.onnx`` (no local function: for TensorRT < 10.7 with the
    plugin library). ``plain`` writes the decomposed graph (no custom node) instead of the node form.
    Returns {name: path}. ``progress(step_name)`` is called before each file.
    """
    from .model import load_checkpoint

    import shutil

    checkpoint = Path(checkpoint)
    model, meta = load_checkpoint(checkpoint)
    sha = file_sha256(checkpoint)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"-o {out_dir} is a file; name a folder")
    # written into a temporary folder beside out_dir and moved in at the end: a failed or interrupted
    # export leaves out_dir as it was, never a half-made set of forms
    work = out_dir.parent / f".{out_dir.name}.exporting-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    forms = ["model", "encoder", "head"] if streaming else ["model"]
    interp = "plain" if plain else "function"
    names: list[str] = []
    try:
        for form in forms:
            if progress:
                progress(form)
            proto = export_module(model, form, meta["classes"], meta["preprocess"], interp, opset,
                                  str(checkpoint.resolve()), sha, sampling=meta.get("sampling"))
            names.append(save_onnx(proto, work / f"{form}.onnx").name)
            if plugin_only and interpolation_nodes(proto):
                names.append(save_onnx(to_plugin_only(proto), work / f"{form}.plugin.onnx").name)
        if not out_dir.exists():
            work.rename(out_dir)
        else:
            for f in work.iterdir():
                os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {n.removesuffix(".onnx"): out_dir / n for n in names}
