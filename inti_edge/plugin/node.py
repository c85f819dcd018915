"""The TokenInterpolation op in ONNX: one node ``inti::TokenInterpolation`` and its local function.

Every interpolation is ONE node (the contract of ``plugin.spec``: int, ints, float and float32 TENSOR
attributes, ``plugin_version``). The node's decomposition travels as an ONNX local function of the
same name, so ONNX Runtime runs the file as it is, and a TensorRT parser that prefers a registered
plugin over a local function (TensorRT >= 10.7) maps it to the plugin of plugins/. Older parsers
(TensorRT 10.3, JetPack 6) take the local function instead, so the ``.plugin.onnx`` form drops the
function. The node carries ``plugin_namespace`` as an attribute too (TensorRT < 10.10 reads the
namespace only from there).

The local function's body is generated from the model's ``InterpolationConfig`` (one config for all
interpolations of a model): the structure (D, dilations, groups, softmax/sigmoid, CLS mode) is
written into the body, the weights and eps are read from the node's attributes (attribute
references), so each node carries its own weights, exactly once.

``inline_interpolation`` / ``fold_interpolation``: how the Q/DQ and FP16 tools see the node (they
drop local functions and would quantize the body, so the body is inlined under a name prefix, kept
out of precision changes, and folded back into the single node).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..artifact import META_INTERP, ArtifactError, copy_model, read_info, set_metadata
from . import spec as plugin_spec

OPSET = 18  # the opset of the function body when the model does not say (export's default)


def make_plugin_node(name: str, x: str, y: str, attrs: dict[str, Any]) -> onnx.NodeProto:
    """One ``inti::TokenInterpolation`` node, x (P, 2, N, C) -> y (P, N, C).

    ``plugin_namespace`` repeats the domain as an attribute: TensorRT 10.7-10.9 prefer a plugin over
    the local function but read the namespace only from there (10.10+ also from the domain)."""
    node = helper.make_node(plugin_spec.PLUGIN_NAME, [x], [y], name=name, domain=plugin_spec.PLUGIN_NAMESPACE)
    for k in plugin_spec.INT_FIELDS:
        node.attribute.append(helper.make_attribute(k, int(attrs[k])))
    for k in plugin_spec.INTS_FIELDS:
        node.attribute.append(helper.make_attribute(k, [int(v) for v in attrs[k]]))
    for k in plugin_spec.FLOAT_FIELDS:
        node.attribute.append(helper.make_attribute(k, float(attrs[k])))
    for k in plugin_spec.WEIGHT_FIELDS:
        arr = np.ascontiguousarray(attrs[k], dtype=np.float32)
        node.attribute.append(helper.make_attribute(k, numpy_helper.from_array(arr, name=k)))
    node.attribute.append(helper.make_attribute("plugin_version", plugin_spec.PLUGIN_VERSION))
    node.attribute.append(helper.make_attribute("plugin_namespace", plugin_spec.PLUGIN_NAMESPACE))
    return node


def node_attrs_from_proto(node: onnx.NodeProto) -> dict[str, Any]:
    """Inverse of make_plugin_node: the contract attributes of a node."""
    out: dict[str, Any] = {}
    for a in node.attribute:
        if a.name in plugin_spec.INT_FIELDS:
            out[a.name] = a.i
        elif a.name in plugin_spec.INTS_FIELDS:
            out[a.name] = list(a.ints)
        elif a.name in plugin_spec.FLOAT_FIELDS:
            out[a.name] = a.f
        elif a.name in plugin_spec.WEIGHT_FIELDS:
            out[a.name] = numpy_helper.to_array(a.t)
    return out


def _attr_ref(name: str, attr_type: int, ref: str) -> onnx.AttributeProto:
    """Attribute ``name`` that takes the value of the enclosing function node's attribute ``ref``."""
    a = onnx.AttributeProto()
    a.name, a.type, a.ref_attr_name = name, attr_type, ref
    return a


class _Body:
    """Builds the node list of the decomposition; names every tensor and node with one prefix."""

    def __init__(self, prefix: str):
        self.prefix, self.nodes, self.n = prefix, [], 0

    def op(self, op_type: str, inputs: list[str], **kw) -> str:
        self.n += 1
        out = f"{self.prefix}{op_type}_{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **kw))
        return out

    def const(self, value, dtype=np.int64) -> str:
        return self.op("Constant", [], value=numpy_helper.from_array(np.asarray(value, dtype=dtype)))

    def const_attr(self, attr: str, attr_type: int) -> str:
        """A Constant whose value is the enclosing node's attribute ``attr`` (attribute reference)."""
        self.n += 1
        out = f"{self.prefix}{attr}"
        key = {onnx.AttributeProto.TENSOR: "value", onnx.AttributeProto.INT: "value_int"}[attr_type]
        node = helper.make_node("Constant", [], [out], name=out)
        node.attribute.append(_attr_ref(key, attr_type, attr))
        self.nodes.append(node)
        return out


def _decomposition(b: _Body, x: str, y: str, icfg, weights: dict[str, str], literals: dict[str, Any] | None) -> None:
    """Append the op's math (TokenInterpolation docstring) to ``b``: x (P, 2, N, C) -> y (P, N, C).

    ``weights`` maps contract weight names to tensor names. ``literals`` gives grid_h and eps as
    values (an inlined copy); None reads them from the enclosing node's attributes (the local function).
    """
    D, G = icfg.context_dim, icfg.groups
    big = np.iinfo(np.int64).max
    patches = b.op("Slice", [x, b.const([1]), b.const([big]), b.const([2])])  # (P, 2, HW, C)
    c_dim = b.op("Shape", [x], start=3)  # [C]
    ones = b.op("ConstantOfShape", [c_dim], value=numpy_helper.from_array(np.ones(1, np.float32)))
    zeros = b.op("ConstantOfShape", [c_dim], value=numpy_helper.from_array(np.zeros(1, np.float32)))
    if literals is None:
        ln = helper.make_node("LayerNormalization", [patches, ones, zeros], [f"{b.prefix}ln"], name=f"{b.prefix}ln", axis=-1)
        ln.attribute.append(_attr_ref("epsilon", onnx.AttributeProto.FLOAT, "eps"))
        b.nodes.append(ln)
        z = f"{b.prefix}ln"
    else:
        z = b.op("LayerNormalization", [patches, ones, zeros], axis=-1, epsilon=float(literals["eps"]))
    z = b.op("Transpose", [z], perm=[0, 2, 1, 3])  # (P, HW, 2, C)
    z = b.op("Reshape", [z, b.const([0, 0, -1])])  # (P, HW, 2C) == cat([z0, z1], -1)
    u = b.op("Add", [b.op("MatMul", [z, weights["w_in"]]), weights["b_in"]])  # (P, HW, D)
    ut = b.op("Transpose", [u], perm=[0, 2, 1])  # (P, D, HW)
    if literals is None:
        grid_h = b.const_attr("grid_h", onnx.AttributeProto.INT)
    else:
        grid_h = b.const(literals["grid_h"])
    shape4 = b.op("Concat", [b.const([0, 0]), b.op("Unsqueeze", [grid_h, b.const([0])]), b.const([-1])], axis=0)
    ug = b.op("Reshape", [ut, shape4])  # (P, D, H, W)
    feats = [u]
    for i, d in enumerate(icfg.dilations):
        w = b.op("Unsqueeze", [b.op("Gather", [weights["dw_weight"], b.const(i)], axis=0), b.const([1])])  # (D, 1, 3, 3)
        bias = b.op("Gather", [weights["dw_bias"], b.const(i)], axis=0)  # (D,)
        c = b.op("Conv", [ug, w, bias], group=D, kernel_shape=[3, 3], dilations=[d, d], pads=[d, d, d, d])
        c = b.op("Transpose", [b.op("Reshape", [c, b.const([0, 0, -1])])], perm=[0, 2, 1])  # (P, HW, D)
        feats.append(c)
    h = b.op("Concat", feats, axis=-1)  # (P, HW, D*(1+S))
    # exact GELU: 0.5 * h * (1 + erf(h / sqrt(2)))  (opset 18 has no Gelu op)
    erf = b.op("Erf", [b.op("Div", [h, b.const(math.sqrt(2.0), np.float32)])])
    h = b.op("Mul", [b.op("Mul", [h, b.const(0.5, np.float32)]), b.op("Add", [erf, b.const(1.0, np.float32)])])
    logits = b.op("Add", [b.op("MatMul", [h, weights["w_out"]]), weights["b_out"]])  # (P, HW, 2G)
    logits = b.op("Reshape", [logits, b.const([0, 0, G, 2])])  # (P, HW, G, 2)
    if icfg.normalize == "softmax":
        wp = b.op("Softmax", [logits], axis=-1)
    else:
        wp = b.op("Sigmoid", [logits])
    wc = b.op("ReduceMean", [wp, b.const([1])], keepdims=1)  # (P, 1, G, 2)
    if icfg.cls_mode == "half":
        wc = b.op("Expand", [b.const(0.5, np.float32), b.op("Shape", [wc])])
    wt = b.op("Concat", [wc, wp], axis=1)  # (P, N, G, 2)
    xg = b.op("Reshape", [x, b.const([0, 0, 0, G, -1])])  # (P, 2, N, G, C/G)
    x0 = b.op("Gather", [xg, b.const(0)], axis=1)  # (P, N, G, C/G)
    x1 = b.op("Gather", [xg, b.const(1)], axis=1)
    w0 = b.op("Slice", [wt, b.const([0]), b.const([1]), b.const([3])])  # (P, N, G, 1)
    w1 = b.op("Slice", [wt, b.const([1]), b.const([2]), b.const([3])])
    mixed = b.op("Add", [b.op("Mul", [w0, x0]), b.op("Mul", [w1, x1])])  # (P, N, G, C/G)
    b.nodes.append(helper.make_node("Reshape", [mixed, b.const([0, 0, -1])], [y], name=f"{b.prefix}out"))


def local_function(icfg, opset: int = OPSET) -> onnx.FunctionProto:
    """The decomposition as an ONNX local function ``inti::TokenInterpolation`` (specialised to icfg)."""
    b = _Body("")
    weights = {k: b.const_attr(k, onnx.AttributeProto.TENSOR) for k in plugin_spec.WEIGHT_FIELDS}
    _decomposition(b, "x", "y", icfg, weights, literals=None)
    attrs = list(plugin_spec.INT_FIELDS + plugin_spec.INTS_FIELDS + plugin_spec.FLOAT_FIELDS + plugin_spec.WEIGHT_FIELDS)
    attrs += ["plugin_version", "plugin_namespace"]  # read by TensorRT's parser, unused by the body
    return helper.make_function(
        plugin_spec.PLUGIN_NAMESPACE,
        plugin_spec.PLUGIN_NAME,
        ["x"],
        ["y"],
        b.nodes,
        [helper.make_opsetid("", opset)],
        attributes=attrs,
        doc_string="InTI token interpolation, x (P, 2, N, C) -> y (P, N, C); see inti_edge/model/interpolation.py",
    )


def interpolation_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == plugin_spec.PLUGIN_NAMESPACE and n.op_type == plugin_spec.PLUGIN_NAME]


# --- inline / fold: how the Q/DQ and FP16 tools see the node ------------------------------------------
INLINE_PREFIX = "inti_interp/"


@dataclass
class Inlined:
    """What ``fold_interpolation`` needs to undo ``inline_interpolation``."""

    originals: dict[str, onnx.NodeProto]  # name prefix of a decomposition -> the node it replaced
    interpolation: Any  # InterpolationConfig (the local function's structure)
    metadata: dict[str, str]  # the source's metadata (precision tools drop it)

    @property
    def exclude_pattern(self) -> str:
        """Regex of every node name of every decomposition (for quantizers' nodes_to_exclude)."""
        return "^" + re.escape(INLINE_PREFIX) + r"\d+/.*"


def inline_interpolation(model: onnx.ModelProto) -> tuple[onnx.ModelProto, Inlined]:
    """Replace every TokenInterpolation node by its decomposition, weights as initializers.

    Every node and initializer of one decomposition is named with its prefix, so quantizers can
    exclude them by pattern and ``fold_interpolation`` can put the single node back. (ModelOpt
    drops ONNX local functions and would quantize the body's Mul/Add; inline -> exclude -> fold
    keeps the node whole.)
    """
    model = copy_model(model)
    info = read_info(model)
    cfg = info.config
    nodes, inits, originals = [], [], {}
    for node in model.graph.node:
        if node.domain == plugin_spec.PLUGIN_NAMESPACE and node.op_type == plugin_spec.PLUGIN_NAME:
            prefix = f"{INLINE_PREFIX}{len(originals)}/"
            originals[prefix] = _copy_node(node)
            attrs = node_attrs_from_proto(node)
            weights = {}
            for k in plugin_spec.WEIGHT_FIELDS:
                weights[k] = prefix + k
                inits.append(numpy_helper.from_array(attrs[k].astype(np.float32), name=prefix + k))
            b = _Body(prefix)
            _decomposition(b, node.input[0], node.output[0], cfg.interpolation, weights, literals=attrs)
            nodes.extend(b.nodes)
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(inits)
    drop_functions(model)
    return model, Inlined(originals, cfg.interpolation, dict(info.raw))


def fold_interpolation(model: onnx.ModelProto, inlined: Inlined) -> onnx.ModelProto:
    """Put each inlined decomposition back as its single node (graph surgery by name prefix).

    The region's one outside input and one outside-consumed output become the node's x and y
    (they may have been renamed by Casts a precision pass put around the region). The local
    function is added back and the source's metadata restored.
    """
    model = copy_model(model)
    g = model.graph
    init_names = {i.name for i in g.initializer}
    for prefix, orig in inlined.originals.items():
        region = [n for n in g.node if n.name.startswith(prefix)]
        if not region:
            raise ArtifactError(f"interpolation region {prefix} is missing after the precision pass")
        produced = {o for n in region for o in n.output}
        outside_in = {i for n in region for i in n.input if i and i not in produced and i not in init_names}
        rest = [n for n in g.node if not n.name.startswith(prefix)]
        consumed_outside = {i for n in rest for i in n.input} | {o.name for o in g.output}
        outs = [o for o in produced if o in consumed_outside]
        if len(outside_in) != 1 or len(outs) != 1:
            raise ArtifactError(f"interpolation region {prefix} has inputs {sorted(outside_in)} and outputs {outs}; cannot fold")
        new = make_plugin_node(orig.name, outside_in.pop(), outs[0], node_attrs_from_proto(orig))
        # keep topological order: the node goes where the region's last node was
        idx = max(i for i, n in enumerate(g.node) if n.name.startswith(prefix))
        keep = [n for i, n in enumerate(g.node) if not n.name.startswith(prefix) or i == idx]
        keep = [new if n.name.startswith(prefix) else n for n in keep]
        del g.node[:]
        g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    keep_inits = [i for i in g.initializer if i.name in used or not i.name.startswith(INLINE_PREFIX)]
    del g.initializer[:]
    g.initializer.extend(keep_inits)
    vi = [v for v in g.value_info if not v.name.startswith(INLINE_PREFIX)]
    del g.value_info[:]
    g.value_info.extend(vi)
    drop_functions(model)
    if inlined.originals:
        ensure_opset(model, plugin_spec.PLUGIN_NAMESPACE, 1)
        model.functions.append(local_function(inlined.interpolation, default_opset(model)))
    meta = dict(inlined.metadata)
    if inlined.originals:
        meta[META_INTERP] = "function"
    del model.metadata_props[:]
    set_metadata(model, **meta)
    return model


def to_plugin_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph without the local function: only a TensorRT with the plugin loaded can run it."""
    model = copy_model(model)
    drop_functions(model)
    set_metadata(model, **{META_INTERP: "plugin-only"})
    return model


def drop_functions(model: onnx.ModelProto) -> None:
    keep = [f for f in model.functions if not (f.domain == plugin_spec.PLUGIN_NAMESPACE and f.name == plugin_spec.PLUGIN_NAME)]
    del model.functions[:]
    model.functions.extend(keep)


def ensure_opset(model: onnx.ModelProto, domain: str, version: int) -> None:
    if not any(o.domain == domain for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(domain, version))


def default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _copy_node(node: onnx.NodeProto) -> onnx.NodeProto:
    n = onnx.NodeProto()
    n.CopyFrom(node)
    return n
