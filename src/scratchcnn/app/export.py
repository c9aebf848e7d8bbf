"""Take the model anywhere: export a scratchcnn model to ONNX and to PyTorch.

``export_onnx(model, "model.onnx")`` writes an ONNX graph (opset 17) that any ONNX runtime,
converter or viewer (Netron) opens: one node per layer, the weights as initializers named by
their state_dict keys ("0.weight", "1.running_mean"), a dynamic batch axis, the input named
``"input"`` and the output (the model's own output: logits, unless it ends with Softmax)
named ``"output"``, and the model's ``metadata`` (class names, preprocessing, ...) as JSON
strings in the file's ``metadata_props``.

``export_torch(model, "model.pt")`` writes the state_dict as torch tensors (``model.pt``,
loadable with ``torch.load(..., weights_only=True)``) and, beside it, ``model.py``: a short,
readable file defining the same network as a ``torch.nn.Module`` (class ``Net``, a
``nn.Sequential`` whose children are numbered as scratchcnn's layers, so the keys match and
``Net().load_state_dict(torch.load("model.pt", weights_only=True))`` is strict).

Layer by layer, scratchcnn -> ONNX operator -> PyTorch module:

- Conv2D -> Conv (pads: the layer's ``.pads``, so "same" and uneven padding too) -> nn.Conv2d,
  or for uneven padding a small nn.Conv2d subclass padding with nn.ZeroPad2d first;
- MaxPool2D -> MaxPool (padding never wins, as -inf) -> nn.MaxPool2d;
- AvgPool2D -> AveragePool with count_include_pad=1 (zeros count in the mean) -> nn.AvgPool2d;
- GlobalAvgPool2D, whose output is (N, C) -> GlobalAveragePool then Flatten -> a mean over (H, W);
- Dense -> Gemm (weight (out, in), transB=1) -> nn.Linear; Flatten -> Flatten (axis 1) -> nn.Flatten;
- BatchNorm1D / BatchNorm2D -> BatchNormalization in inference form (running statistics, eps)
  -> nn.BatchNorm1d / nn.BatchNorm2d;
- Conv2D's dilation and groups -> Conv's dilations and group -> nn.Conv2d(dilation=, groups=);
- LayerNorm -> LayerNormalization (opset 17; axis = -len(normalized_shape), ones and zeros as scale and
  bias without elementwise_affine) -> nn.LayerNorm;
- GroupNorm -> opset 17 has no GroupNormalization (opset 18's was redefined in 21), so the primitives:
  Reshape to (N, G, m), InstanceNormalization (scale 1, bias 0: each (n, g) standardised), Reshape back,
  then Mul by the weight and Add the bias, both (C, 1, ..., 1) -> nn.GroupNorm;
- Dropout -> Identity -> nn.Dropout;
- ReLU, LeakyReLU, Sigmoid, Tanh, Softmax(dim) -> Relu, LeakyRelu(alpha), Sigmoid, Tanh,
  Softmax(axis=dim) -> nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softmax(dim);
- Sequential, nested too -> its layers in order -> nn.Sequential;
- Residual(body, shortcut) -> the body's nodes and the shortcut's (none for the identity) on the same
  input, then Add -> a small ``Residual`` nn.Module (in the generated file) holding ``body`` and
  ``shortcut`` as children, so the keys stay scratchcnn's ("2.body.0.weight", "2.shortcut.1.bias").

Any other layer (a custom Module) raises :class:`scratchcnn.errors.ExportError` naming it.
The ONNX graph computes in float32 (what every runtime supports); the PyTorch module in the
model's dtype. ``onnx`` (and ``onnxruntime`` to run or check the file) and ``torch`` are
optional: ``pip install 'scratchcnn[export]'`` / ``pip install torch``.

The command line: ``scratchcnn export MODEL --format onnx --out model.onnx`` (see
:func:`add_export_parser`, :func:`export_command`).
"""
import importlib
import importlib.util
import json
import keyword
import os
import pprint
import sys

import numpy as np

from ..errors import ExportError, ScratchCNNError, ShapeError
from ..fileio import atomic_write
from ..nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, GroupNorm,
                  LayerNorm, LeakyReLU, MaxPool2D, ReLU, Residual, Sequential, Sigmoid, Softmax, Tanh, no_grad)

OPSET = 17          # ONNX operator set of the exported graphs
IR_VERSION = 8      # the ONNX file format version that goes with opset 17 (onnxruntime >= 1.10 reads it)

#: the first exporters' layer types (tests/test_export.py's random models cover every one)
EXPORTABLE = (Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Dense, Flatten, BatchNorm1D, BatchNorm2D,
              Dropout, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax)
#: the normalisations added since (tests/test_export_new.py covers them)
NORMS = (LayerNorm, GroupNorm)
#: every layer type the exporters know
LAYERS = EXPORTABLE + NORMS
#: the containers, exported as what they hold: a Sequential as its layers in order, a Residual as its
#: two branches and their sum
CONTAINERS = (Sequential, Residual)

_PIP = {"onnx": "pip install onnx (or: pip install 'scratchcnn[export]')",
        "onnxruntime": "pip install onnxruntime (or: pip install 'scratchcnn[export]')",
        "torch": "pip install torch"}


def _require(module, purpose):
    """Import ``module`` (e.g. "onnx.helper"), or raise ExportError saying which pip install adds it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ExportError(f"{purpose} needs the {top} package, which is not installed: {_PIP[top]}") from None


# ---- walking the model -------------------------------------------------------------------
def _leaves(module, prefix=""):
    """``(key_prefix, layer)`` for every layer in order, containers (nested Sequentials, Residuals) opened;
    the prefix is the layer's state_dict prefix ("3.", "2.1." or "4.body.0."; "" for a model that is a
    single layer). A layer the exporters do not know raises ExportError naming it."""
    if isinstance(module, CONTAINERS):
        for name, child in module.named_children():
            yield from _leaves(child, prefix + name + ".")
        return
    if type(module) not in LAYERS:
        cls = type(module)
        where = f"layer {prefix[:-1]}" if prefix else "the model"
        known = ", ".join(t.__name__ for t in LAYERS)
        raise ExportError(f"cannot export {where} ({module!r}, a {cls.__module__}.{cls.__qualname__}): "
                          f"the exporters know only Sequential, Residual and {known}")
    yield prefix, module


def _input_shape(model, input_shape):
    """The input shape without the batch axis: the argument, else the model's, else its metadata's."""
    for shape in (input_shape, getattr(model, "input_shape", None),
                  (getattr(model, "metadata", None) or {}).get("input_shape")):
        if shape is not None:
            return tuple(int(d) for d in shape)
    raise ExportError("the model does not know its input shape (it has seen no data and was built without "
                      "input_shape=): pass input_shape=(C, H, W)")


def _shapes(module, input_shape, prefix="", out=None):
    """``{key_prefix: output shape}`` (no batch axis) of every layer and Residual in ``module`` for
    ``input_shape``, keyed as :func:`_leaves` (a Residual by its own prefix); a misfit names the layer."""
    out = {} if out is None else out
    shape = tuple(input_shape)
    if isinstance(module, Sequential):
        for name, child in module.named_children():
            shape = _shapes(child, shape, prefix + name + ".", out)[prefix + name + "."]
    elif isinstance(module, Residual):
        body = _shapes(module.body, shape, prefix + "body.", out)[prefix + "body."]
        short = shape if module.shortcut is None else _shapes(module.shortcut, shape, prefix + "shortcut.",
                                                             out)[prefix + "shortcut."]
        if body != short:
            raise ShapeError(f"layer {prefix[:-1] or 'Residual'}: the body gives (N, {', '.join(map(str, body))}) "
                             f"but the shortcut (N, {', '.join(map(str, short))})")
        shape = body
    else:
        try:
            shape = tuple(int(d) for d in module.output_shape(shape))
        except ShapeError as exc:
            raise ShapeError(f"layer {prefix[:-1] or type(module).__name__}: {exc}") from None
    out[prefix] = shape
    return out


def _metadata(model, input_shape):
    meta = dict(getattr(model, "metadata", None) or {})
    meta.setdefault("input_shape", list(input_shape))
    return json.loads(json.dumps(meta, default=_jsonable))


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _version():
    try:
        from importlib.metadata import version
        return version("scratchcnn")
    except Exception:  # pragma: no cover - not installed as a distribution
        return ""


# ---- ONNX --------------------------------------------------------------------------------
class _OnnxGraph:
    """Nodes and initializers of the graph under construction."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self.names = [], [], set()

    def const(self, name, array, dtype=np.float32):
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def ints(self, name, values):
        """An int64 initializer (a Reshape's target shape)."""
        return self.const(name, np.asarray(values, dtype=np.int64), dtype=np.int64)

    def node(self, op, inputs, where, **attrs):
        name = f"/{where}/{op}" if where else f"/{op}"
        base, k = name, 0
        while name in self.names:          # a layer of several nodes of one kind: /3/Reshape, /3/Reshape_1
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        out = f"{name}_output_0"
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=name, **attrs))
        return out


def _onnx_pads(pads):
    t, b, l, r = (int(p) for p in pads)
    return [t, l, b, r]             # ONNX: all begins (H, W), then all ends


def _onnx_module(g, prefix, module, x, shapes):
    """Add the nodes computing ``module`` (a layer or a container) on tensor ``x``; returns the output
    tensor's name. ``shapes``: :func:`_shapes` of the model."""
    if isinstance(module, Sequential):
        for name, child in module.named_children():
            x = _onnx_module(g, prefix + name + ".", child, x, shapes)
        return x
    if isinstance(module, Residual):
        body = _onnx_module(g, prefix + "body.", module.body, x, shapes)
        short = x if module.shortcut is None else _onnx_module(g, prefix + "shortcut.", module.shortcut, x, shapes)
        return g.node("Add", [body, short], prefix[:-1].replace(".", "/") if prefix else "Residual")
    return _onnx_layer(g, prefix, module, x, shapes[prefix])


def _onnx_layer(g, prefix, layer, x, shape):
    """Add the nodes computing ``layer`` on tensor ``x`` (``shape``: the layer's output shape, no batch
    axis); returns the output tensor's name."""
    where = prefix[:-1].replace(".", "/") if prefix else type(layer).__name__
    t = type(layer)
    if t is Conv2D:
        inputs = [x, g.const(prefix + "weight", layer.weight.data)]
        if layer.use_bias:
            inputs.append(g.const(prefix + "bias", layer.bias.data))
        return g.node("Conv", inputs, where, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                      pads=_onnx_pads(layer.pads), dilations=list(getattr(layer, "dilation", (1, 1))),
                      group=int(getattr(layer, "groups", 1)))
    if t is MaxPool2D:
        return g.node("MaxPool", [x], where, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                      pads=_onnx_pads(layer.pads), ceil_mode=0)
    if t is AvgPool2D:
        return g.node("AveragePool", [x], where, kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride), pads=_onnx_pads(layer.pads), ceil_mode=0, count_include_pad=1)
    if t is GlobalAvgPool2D:          # scratchcnn's outputs (N, C), ONNX's (N, C, 1, 1)
        return g.node("Flatten", [g.node("GlobalAveragePool", [x], where)], where, axis=1)
    if t is Dense:
        inputs = [x, g.const(prefix + "weight", layer.weight.data)]
        if layer.use_bias:
            inputs.append(g.const(prefix + "bias", layer.bias.data))
        return g.node("Gemm", inputs, where, alpha=1.0, beta=1.0, transB=1)
    if t is Flatten:
        return g.node("Flatten", [x], where, axis=1)
    if t in (BatchNorm1D, BatchNorm2D):
        c = layer.num_features
        if layer.affine:
            scale, bias = g.const(prefix + "weight", layer.weight.data), g.const(prefix + "bias", layer.bias.data)
        else:
            scale, bias = g.const(prefix + "scale_ones", np.ones(c)), g.const(prefix + "bias_zeros", np.zeros(c))
        return g.node("BatchNormalization", [x, scale, bias, g.const(prefix + "running_mean", layer.running_mean),
                                             g.const(prefix + "running_var", layer.running_var)],
                      where, epsilon=float(layer.eps), momentum=float(1 - layer.momentum))
    if t is LayerNorm:
        dims = layer.normalized_shape
        if layer.elementwise_affine:
            scale, bias = g.const(prefix + "weight", layer.weight.data), g.const(prefix + "bias", layer.bias.data)
        else:
            scale, bias = g.const(prefix + "scale_ones", np.ones(dims)), g.const(prefix + "bias_zeros", np.zeros(dims))
        return g.node("LayerNormalization", [x, scale, bias], where, axis=-len(dims), epsilon=float(layer.eps))
    if t is GroupNorm:                # (N, C, *) -> (N, G, m): InstanceNormalization standardises each (n, g)
        groups, c = layer.num_groups, layer.num_channels
        grouped = g.node("Reshape", [x, g.ints(prefix + "grouped_shape", [0, groups, int(np.prod(shape)) // groups])],
                         where)
        y = g.node("InstanceNormalization", [grouped, g.const(prefix + "group_scale_ones", np.ones(groups)),
                                             g.const(prefix + "group_bias_zeros", np.zeros(groups))],
                   where, epsilon=float(layer.eps))
        y = g.node("Reshape", [y, g.ints(prefix + "output_shape", [0, *shape])], where)
        if layer.affine:              # per channel: weight and bias as (C, 1, ..., 1)
            per_channel = (c,) + (1,) * (len(shape) - 1)
            y = g.node("Mul", [y, g.const(prefix + "weight", layer.weight.data.reshape(per_channel))], where)
            y = g.node("Add", [y, g.const(prefix + "bias", layer.bias.data.reshape(per_channel))], where)
        return y
    if t is Dropout:
        return g.node("Identity", [x], where)
    if t is ReLU:
        return g.node("Relu", [x], where)
    if t is LeakyReLU:
        return g.node("LeakyRelu", [x], where, alpha=float(layer.negative_slope))
    if t is Sigmoid:
        return g.node("Sigmoid", [x], where)
    if t is Tanh:
        return g.node("Tanh", [x], where)
    if t is Softmax:
        return g.node("Softmax", [x], where, axis=int(layer.dim))
    raise ExportError(f"no ONNX rule for layer {prefix[:-1]} ({layer!r})")   # pragma: no cover (see _leaves)


def to_onnx(model, input_shape=None):
    """The ONNX ``ModelProto`` of ``model`` (checked with ``onnx.checker``); see :func:`export_onnx`."""
    onnx = _require("onnx", "exporting to ONNX")
    helper = _require("onnx.helper", "exporting to ONNX")
    numpy_helper = _require("onnx.numpy_helper", "exporting to ONNX")
    list(_leaves(model))                       # raises for a layer it cannot export
    shape = _input_shape(model, input_shape)
    shapes = _shapes(model, shape)
    out_shape = shapes[""]
    g = _OnnxGraph(helper, numpy_helper)
    x = _onnx_module(g, "", model, "input", shapes)
    if g.nodes and g.nodes[-1].output[0] == x:
        g.nodes[-1].output[0] = "output"
    else:                              # an empty Sequential: the input is the output
        g.nodes.append(helper.make_node("Identity", [x], ["output"], name="/Identity"))
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, "scratchcnn", [helper.make_tensor_value_info("input", f32, ["batch", *shape])],
        [helper.make_tensor_value_info("output", f32, ["batch", *out_shape])], initializer=g.initializers,
        doc_string=repr(model))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="scratchcnn", producer_version=_version(),
                              doc_string="exported by scratchcnn.app.export.export_onnx")
    helper.set_model_props(proto, {str(k): json.dumps(v) for k, v in _metadata(model, shape).items()})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:          # pragma: no cover - a bug in the rules above
        raise ExportError(f"the exported ONNX graph does not pass onnx.checker: {exc}") from None
    return proto


def export_onnx(model, path, input_shape=None):
    """Write ``model`` to ``path`` as an ONNX file; returns ``path``.

    ``input_shape`` (no batch axis, e.g. ``(1, 28, 28)``) defaults to the model's. The batch axis
    is dynamic ("batch"); the input is named ``"input"``, the output ``"output"``. A layer ONNX
    cannot express raises :class:`~scratchcnn.errors.ExportError` naming it; a missing ``onnx``
    package says which ``pip install`` adds it."""
    proto = to_onnx(model, input_shape)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path


def run_onnx(path, x, threads=None):
    """Run the ONNX file ``path`` on ``x`` with onnxruntime (CPU); returns the output array."""
    ort = _require("onnxruntime", "running an ONNX file")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = opts.inter_op_num_threads = int(threads)
    session = ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


# ---- PyTorch -----------------------------------------------------------------------------
def _one(p):
    """A pair as PyTorch's short form: ``3`` for ``(3, 3)``, else the tuple."""
    p = tuple(int(v) for v in p)
    return p[0] if p[0] == p[1] else p


def _call(name, args, kwargs):
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _torch_layer(layer, helpers):
    """The PyTorch expression building ``layer`` (a leaf); ``helpers`` collects the helper classes used."""
    t = type(layer)
    if t is Conv2D:
        kw = {"kernel_size": _one(layer.kernel_size)}
        if tuple(layer.stride) != (1, 1):
            kw["stride"] = _one(layer.stride)
        top, bottom, left, right = (int(p) for p in layer.pads)
        uneven = top != bottom or left != right
        if uneven:
            kw["pads"] = (left, right, top, bottom)          # nn.ZeroPad2d's order
        elif top or left:
            kw["padding"] = _one((top, left))
        if tuple(getattr(layer, "dilation", (1, 1))) != (1, 1):
            kw["dilation"] = _one(layer.dilation)
        if int(getattr(layer, "groups", 1)) != 1:
            kw["groups"] = int(layer.groups)
        if not layer.use_bias:
            kw["bias"] = False
        if uneven:
            helpers.add("PaddedConv2d")
            return _call("PaddedConv2d", (layer.in_channels, layer.out_channels), kw)
        return _call("nn.Conv2d", (layer.in_channels, layer.out_channels), kw)
    if t in (MaxPool2D, AvgPool2D):
        top, bottom, left, right = (int(p) for p in layer.pads)
        if top != bottom or left != right:      # pragma: no cover - pools take symmetric padding only
            raise ExportError(f"{layer!r}: uneven pool padding {layer.pads} has no PyTorch module")
        kw = {"kernel_size": _one(layer.kernel_size)}
        if tuple(layer.stride) != tuple(layer.kernel_size):
            kw["stride"] = _one(layer.stride)
        if top or left:
            kw["padding"] = _one((top, left))
        return _call("nn.MaxPool2d" if t is MaxPool2D else "nn.AvgPool2d", (), kw)   # count_include_pad=True
    if t is GlobalAvgPool2D:
        helpers.add("GlobalAvgPool2d")
        return "GlobalAvgPool2d()"
    if t is Dense:
        return _call("nn.Linear", (layer.in_features, layer.out_features), {} if layer.use_bias else {"bias": False})
    if t is Flatten:
        return "nn.Flatten()"
    if t in (BatchNorm1D, BatchNorm2D):
        kw = {}
        if layer.eps != 1e-5:
            kw["eps"] = layer.eps
        if layer.momentum != 0.1:
            kw["momentum"] = layer.momentum
        if not layer.affine:
            kw["affine"] = False
        return _call("nn.BatchNorm1d" if t is BatchNorm1D else "nn.BatchNorm2d", (layer.num_features,), kw)
    if t is LayerNorm:
        dims = layer.normalized_shape
        kw = {} if layer.eps == 1e-5 else {"eps": layer.eps}
        if not layer.elementwise_affine:
            kw["elementwise_affine"] = False
        return _call("nn.LayerNorm", (dims[0] if len(dims) == 1 else dims,), kw)
    if t is GroupNorm:
        kw = {} if layer.eps == 1e-5 else {"eps": layer.eps}
        if not layer.affine:
            kw["affine"] = False
        return _call("nn.GroupNorm", (layer.num_groups, layer.num_channels), kw)
    if t is Dropout:
        return _call("nn.Dropout", (), {"p": layer.p})
    if t is LeakyReLU:
        return _call("nn.LeakyReLU", (), {"negative_slope": layer.negative_slope})
    if t is Softmax:
        return _call("nn.Softmax", (), {"dim": layer.dim})
    if t in (ReLU, Sigmoid, Tanh):
        return f"nn.{t.__name__}()"
    raise ExportError(f"no PyTorch rule for {layer!r}")        # pragma: no cover (see _leaves)


def _torch_children(module, prefix, shapes, helpers, indent):
    """``(code, comment)`` source lines of the arguments of ``nn.Sequential(...)`` (or of ``Residual(...)``)
    for ``module``'s children, one expression per child; the comment gives its state_dict prefix and
    output shape."""
    lines = []
    for name, child in module.named_children():
        key, lead = prefix + name, (f"{name}=" if isinstance(module, Residual) else "")
        shape = shapes.get(key + ".")
        note = f"# {key}" + (f": -> (N, {', '.join(map(str, shape))})" if shape is not None else "")
        if isinstance(child, Sequential):
            lines.append((f"{indent}{lead}nn.Sequential(", note))
            lines += _torch_children(child, key + ".", shapes, helpers, indent + "    ")
            lines.append((f"{indent}),", ""))
        elif isinstance(child, Residual):
            helpers.add("Residual")
            lines.append((f"{indent}{lead}Residual(", note.replace(":", ": body(x) + shortcut(x)", 1)
                          if ":" in note else note + ": body(x) + shortcut(x)"))
            lines += _torch_children(child, key + ".", shapes, helpers, indent + "    ")
            lines.append((f"{indent}),", ""))
        else:
            lines.append((f"{indent}{lead}{_torch_layer(child, helpers)},", note))
    return lines


def _aligned(lines):
    """Code lines with their comments in one column (as far as a long line allows)."""
    width = min(72, max((len(code) for code, note in lines if note), default=0) + 2)
    return [f"{code:<{width - 2}}  {note}".rstrip() if note else code for code, note in lines]


_HELPERS = {
    "PaddedConv2d": '''
class PaddedConv2d(nn.Conv2d):
    """nn.Conv2d after zero padding that may be uneven: ``pads`` = (left, right, top, bottom), as
    nn.ZeroPad2d takes it (scratchcnn's padding="same" with an even kernel puts the extra row and
    column at the bottom and right). The pad module has no parameters, so the state_dict keys stay
    those of a plain nn.Conv2d."""

    def __init__(self, in_channels, out_channels, kernel_size, pads, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, padding=0, **kwargs)
        self.pad = nn.ZeroPad2d(pads)

    def forward(self, x):
        return super().forward(self.pad(x))
''',
    "GlobalAvgPool2d": '''
class GlobalAvgPool2d(nn.Module):
    """The mean of each channel: (N, C, H, W) -> (N, C), as scratchcnn's GlobalAvgPool2D."""

    def forward(self, x):
        return x.mean(dim=(2, 3))
''',
    "Residual": '''
class Residual(nn.Module):
    """``body(x) + shortcut(x)``, as scratchcnn's Residual; ``shortcut=None`` is the identity. The
    branches are children named body and shortcut, so the keys are scratchcnn's ("2.body.0.weight")."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))
''',
}


def torch_source(model, class_name="Net", weights_file=None, input_shape=None, module_name="model"):
    """The Python source of the PyTorch module equivalent to ``model`` (see :func:`export_torch`)."""
    taken = {"os", "torch", "nn", "load", "INPUT_SHAPE", "WEIGHTS", "METADATA", *_HELPERS}
    if not class_name.isidentifier() or keyword.iskeyword(class_name) or class_name in taken:
        raise ExportError(f"class_name must be a Python identifier other than {', '.join(sorted(taken))}, "
                          f"got {class_name!r}")
    leaves = list(_leaves(model))            # raises for a layer it cannot export
    try:
        shape = _input_shape(model, input_shape)
    except ExportError:
        shape = None                         # the comments then give no shapes
    shapes = _shapes(model, shape) if shape is not None else {}
    helpers = set()
    if isinstance(model, CONTAINERS):
        base = "nn.Sequential" if isinstance(model, Sequential) else "Residual"
        if base == "Residual":
            helpers.add("Residual")
        body = _torch_children(model, "", shapes, helpers, " " * 12)
        init = ["        super().__init__(", *_aligned(body), "        )"]
    else:                                    # a model that is one layer: Net is that layer
        expr = _torch_layer(model, helpers)
        base, args = expr.split("(", 1)
        init = [f"        super().__init__({args}"]
    dtype = np.dtype(getattr(model, "dtype", None) or np.float32)
    if dtype != np.float32:
        init.append(f"        self.to(torch.{dtype.name})")
    meta = _metadata(model, shape) if shape is not None else _metadata(model, ())
    if shape is None:
        meta.pop("input_shape", None)
    weights = weights_file or "model.pt"
    example = f"(N, {', '.join(map(str, shape))})" if shape else "(N, ...)"
    head = f'''"""PyTorch version of a scratchcnn model, written by scratchcnn's export_torch.

    from {module_name} import {class_name}, load
    net = load()                      # {class_name}() with the weights of {weights}, in eval mode
    with torch.no_grad():
        logits = net(x)               # x: float32 {example}

or by hand: ``net = {class_name}(); net.load_state_dict(torch.load("{weights}", weights_only=True))``.
The layers are the numbered children of an nn.Sequential (a Residual's branches its children body
and shortcut), so the state_dict keys are scratchcnn's ("0.weight", "1.running_mean", ...).
"""
import os

import torch
from torch import nn

INPUT_SHAPE = {tuple(shape) if shape is not None else None!r}  # one example's shape; the batch axis comes first
WEIGHTS = {weights!r}  # the state_dict (torch.save), next to this file
METADATA = {pprint.pformat(meta, indent=4, width=96, sort_dicts=False).replace(chr(10), chr(10) + "    ")}
'''
    parts = [head]
    for name in ("PaddedConv2d", "GlobalAvgPool2d", "Residual"):
        if name in helpers:
            parts.append("\n" + _HELPERS[name])
    parts.append(f'''

class {class_name}({base}):
    """{type(model).__name__} exported from scratchcnn ({len(leaves)} layer{"" if len(leaves) == 1 else "s"})."""

    def __init__(self):
{chr(10).join(init)}


def load(path=None, map_location="cpu"):
    """{class_name}() with the weights of ``path`` (default: WEIGHTS beside this file), in eval mode."""
    if path is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS)
    net = {class_name}()
    net.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))
    return net.eval()
''')
    return "".join(parts)


def export_torch(model, path_pt, path_py=None, class_name="Net", input_shape=None):
    """Write ``model``'s state_dict as torch tensors to ``path_pt`` (a ``torch.save`` file that
    ``torch.load(path_pt, weights_only=True)`` reads) and the source of the equivalent
    ``torch.nn.Module`` (class ``class_name``) to ``path_py`` (default: beside it, ``.py``).
    Returns ``(path_pt, path_py)``.

    ``net = Net(); net.load_state_dict(torch.load(path_pt, weights_only=True)); net.eval()``
    then computes what ``model`` computes in eval mode."""
    torch = _require("torch", "exporting to PyTorch")
    path_pt = os.fspath(path_pt)
    if path_py is None:
        path_py = os.path.splitext(path_pt)[0] + ".py"
    path_py = os.fspath(path_py)
    rel = os.path.relpath(os.path.abspath(path_pt), os.path.dirname(os.path.abspath(path_py)))
    source = torch_source(model, class_name=class_name, weights_file=rel.replace(os.sep, "/"),
                          input_shape=input_shape, module_name=os.path.splitext(os.path.basename(path_py))[0])
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.state_dict().items()}
    atomic_write(path_pt, lambda f: torch.save(state, f))
    atomic_write(path_py, lambda f: f.write(source), mode="w")
    return path_pt, path_py


def load_torch(path_py, path_pt=None, class_name="Net"):
    """Import the generated ``path_py`` and return ``class_name()`` with the weights of ``path_pt``
    (default: beside it, ``.pt``) loaded strictly, in eval mode."""
    torch = _require("torch", "loading an exported PyTorch model")
    path_py = os.fspath(path_py)
    path_pt = os.fspath(path_pt) if path_pt is not None else os.path.splitext(path_py)[0] + ".pt"
    name = f"_scratchcnn_export_{abs(hash(os.path.abspath(path_py)))}"
    spec = importlib.util.spec_from_file_location(name, path_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = getattr(module, class_name)()
    net.load_state_dict(torch.load(path_pt, map_location="cpu", weights_only=True), strict=True)
    return net.eval()


def run_torch(net, x):
    """``net(x)`` under ``torch.no_grad()`` as a NumPy array."""
    torch = _require("torch", "running an exported PyTorch model")
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x))).numpy()


# ---- command line ------------------------------------------------------------------------
def add_export_parser(subparsers):
    """Add ``export MODEL --format {onnx,torch} --out PATH`` to an argparse subparsers object;
    returns the new parser (its ``func`` default is :func:`export_command`)."""
    p = subparsers.add_parser(
        "export", help="write a saved model as ONNX (.onnx) or PyTorch (.pt weights + .py module)",
        description="Write a saved scratchcnn model as an ONNX file (for onnxruntime, converters, Netron) or "
                    "as PyTorch: a .pt state_dict and, beside it, a .py file defining the same nn.Module. "
                    "The export is then run on a random batch and compared with scratchcnn's output.")
    p.add_argument("model", help="a model file written by scratchcnn (model.npz)")
    p.add_argument("--format", choices=["onnx", "torch"], default=None,
                   help="onnx or torch (default: from --out's extension, .onnx or .pt)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="the file to write: model.onnx, or model.pt for torch (model.py is written beside it); "
                        "default: MODEL with the format's extension")
    p.add_argument("--input-shape", default=None, metavar="C,H,W",
                   help="C,H,W, for a model that does not record its input shape")
    p.add_argument("--class-name", default="Net", help="name of the generated PyTorch class (default Net)")
    p.add_argument("--no-check", action="store_true",
                   help="do not run the exported model to compare its output with scratchcnn's")
    p.set_defaults(func=export_command)
    return p


def _resolve_format(args):
    fmt, out = args.format, args.out
    if fmt is None:
        ext = os.path.splitext(out or "")[1].lower()
        fmt = {".onnx": "onnx", ".pt": "torch", ".pth": "torch"}.get(ext)
        if fmt is None:
            raise ExportError("say --format onnx or --format torch (or give --out a .onnx or .pt name)")
    if out is None:
        out = os.path.splitext(args.model)[0] + (".onnx" if fmt == "onnx" else ".pt")
    return fmt, out


def _scratchcnn_output(model, x):
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            return np.asarray(model(x))
    finally:
        model.train(was_training)


def export_command(args):
    """Run ``scratchcnn export`` for parsed ``args``; returns the exit code (0 written and, unless
    --no-check, outputs equal; 1 the exported model computes something else; 2 an error, printed)."""
    try:
        return _export_command(args)
    except ScratchCNNError as exc:
        print(f"scratchcnn export: error: {exc}", file=sys.stderr)
        return 2


def _export_command(args):
    from ..model import load                  # at call time, as the command line does (floor 3, no cycle)
    model = load(args.model)
    fmt, out = _resolve_format(args)
    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            raise ExportError(f"--input-shape must be comma-separated integers, got {args.input_shape!r}") from None
    if fmt == "onnx":
        export_onnx(model, out, input_shape=shape)
        print(f"wrote {out} (ONNX opset {OPSET}; input 'input', output 'output', dynamic batch; "
              f"open it at https://netron.app)")
    else:
        class_name = getattr(args, "class_name", "Net") or "Net"
        path_pt, path_py = export_torch(model, out, class_name=class_name, input_shape=shape)
        print(f"wrote {path_pt} (state_dict) and {path_py} (class {class_name}); "
              f"load with: net = {class_name}(); net.load_state_dict(torch.load({path_pt!r}, weights_only=True))")
    if getattr(args, "no_check", False):
        return 0
    x = np.random.default_rng(0).standard_normal((2,) + _input_shape(model, shape)).astype(np.float32)
    ref = _scratchcnn_output(model, x.astype(model.dtype or np.float32))
    try:
        if fmt == "onnx":
            got, runtime = run_onnx(out, x), "onnxruntime"
        else:
            got, runtime = run_torch(load_torch(path_py, path_pt, class_name), x.astype(ref.dtype)), "torch"
    except ExportError as exc:                # no runtime installed: the file is written all the same
        print(f"not checked: {exc}")
        return 0
    diff = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    if got.shape != ref.shape or not diff <= 1e-4 * scale:
        print(f"check FAILED: {runtime} gives outputs of shape {got.shape} differing from scratchcnn's "
              f"{ref.shape} by up to {diff:.3g}", file=sys.stderr)
        return 1
    print(f"checked: {runtime} gives scratchcnn's outputs on a random batch (max difference {diff:.2g})")
    return 0
