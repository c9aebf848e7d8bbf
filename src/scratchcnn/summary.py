"""``model.summary()``: a table of layers, output shapes, parameters and multiply-adds."""
from .errors import ShapeError


def _fmt_shape(shape):
    return "(None, " + ", ".join(str(d) for d in shape) + ")"


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
    for i, layer in enumerate(model.layers):
        out = layer.output_shape(shape)
        macs = layer.macs(shape)
        params = layer.num_parameters()
        total_params += params
        trainable += layer.num_parameters(trainable_only=True)
        total_macs += macs
        rows.append((f"{i}: {layer!r}", _fmt_shape(out), f"{params:,}", f"{macs:,}"))
        shape = out
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
