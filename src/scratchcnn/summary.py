"""``model.summary()``: a table of layers, output shapes, parameters and multiply-adds.

A container layer (a :class:`~scratchcnn.nn.Residual`, or a Sequential inside the model) has its own
row, then its layers' rows indented under it, named by their state_dict prefix (``3.body.0``), as
Keras and torchinfo show nested models. The totals count the model's own layers once: a nested row
repeats part of its container's numbers.
"""
from .errors import ShapeError
from .nn import Residual, Sequential


def _fmt_shape(shape):
    return "(None, " + ", ".join(str(d) for d in shape) + ")"


def label(layer):
    """A one-line description of a layer: its repr, or for a container its type and kind
    (``Residual(identity)``, ``Sequential(3 layers)``), whose layers get rows of their own."""
    if isinstance(layer, Residual):
        return f"Residual({layer.extra_repr()})"
    if isinstance(layer, Sequential):
        return f"Sequential({len(layer)} layer{'s' if len(layer) != 1 else ''})"
    return repr(layer)


def layer_rows(model, input_shape):
    """One dict per layer, nested layers included, in forward order: ``name`` (the state_dict
    prefix: ``"3"``, ``"3.body.0"``), ``depth`` (0 for the model's own layers), ``layer``,
    ``input_shape``, ``output_shape``, ``params``, ``trainable``, ``macs`` (shapes without the batch axis)."""
    rows = []
    _rows(model, "", tuple(input_shape), 0, rows)
    return rows


def _rows(container, prefix, shape, depth, rows):
    """Append the rows of ``container``'s layers for an input of ``shape``; returns the output shape."""
    if isinstance(container, Residual):
        children = [("body", container.body)] + ([] if container.shortcut is None else
                                                 [("shortcut", container.shortcut)])
        out = shape
        for name, branch in children:
            out = _row(branch, prefix + name, shape, depth, rows)
        return out
    for i, layer in enumerate(container.layers):
        shape = _row(layer, f"{prefix}{i}", shape, depth, rows)
    return shape


def _row(layer, name, shape, depth, rows):
    out = tuple(layer.output_shape(shape))
    rows.append({"name": name, "depth": depth, "layer": layer, "input_shape": shape, "output_shape": out,
                 "params": layer.num_parameters(), "trainable": layer.num_parameters(trainable_only=True),
                 "macs": layer.macs(shape)})
    if isinstance(layer, (Residual, Sequential)):
        _rows(layer, name + ".", shape, depth + 1, rows)
    return out


def summary(model, input_shape=None, print_fn=print):
    """Print (with ``print_fn``) and return the summary table of a Sequential model.

    input_shape: one example's shape, e.g. ``(1, 28, 28)``; defaults to ``model.input_shape``.
    """
    shape = tuple(input_shape) if input_shape is not None else model.input_shape
    if shape is None:
        raise ShapeError("summary: the model has no input_shape yet; pass summary(input_shape=(C, H, W))")
    model.build(shape)
    rows = [("Layer (type)", "Output Shape", "Param #", "MACs")]
    total_params = trainable = total_macs = 0
    for r in layer_rows(model, shape):
        if r["depth"] == 0:
            total_params += r["params"]
            trainable += r["trainable"]
            total_macs += r["macs"]
        rows.append((f"{'  ' * r['depth']}{r['name']}: {label(r['layer'])}", _fmt_shape(r["output_shape"]),
                     f"{r['params']:,}", f"{r['macs']:,}"))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    line = "-" * (sum(widths) + 6)
    fmt = lambda r: f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}"
    out_lines = [f"Model: Sequential, input {_fmt_shape(model.input_shape)}", line, fmt(rows[0]), "=" * len(line)]
    out_lines += [fmt(r) for r in rows[1:]]
    out_lines += ["=" * len(line),
                  f"Total params: {total_params:,}",
                  f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total_params - trainable:,}",
                  f"Multiply-adds per example: {total_macs:,}",
                  line]
    text = "\n".join(out_lines)
    if print_fn is not None:
        print_fn(text)
    return text
