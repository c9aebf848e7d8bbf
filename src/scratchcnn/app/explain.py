"""Why did the model say that? A saliency map and Grad-CAM for one input, computed by the
layers' own backward passes.

- **Saliency** (Simonyan et al., 2013): the gradient of a class score (its logit) with respect
  to the input, ``d score / d x``: which pixels, nudged, would change the score most. It is the
  backward pass of the whole network started from a one-hot gradient at the logits; the first
  layer is asked for its input gradient (``needs_input_grad``, which training skips). The map
  shown is ``max over channels of |d score / d x|``.
- **Grad-CAM** (Selvaraju et al., 2017) on the last convolution (in a ResNet the last residual
  block, whose output is the sum of its branches): with ``A`` its output
  feature maps (C, h, w) and ``dA = d score / d A`` from the same backward pass, each channel
  weighs ``alpha_c = mean over (i, j) of dA[c, i, j]`` and ``cam = ReLU(sum_c alpha_c A[c])``
  (h, w): where the evidence for the class lies, coarse, upsampled (bilinear) to the input size.

    >>> from scratchcnn.app.explain import explain
    >>> e = explain(model, x_test[0], cls=None)       # None: the predicted class
    >>> e["class"], e["saliency"].shape, e["grad_cam"].shape     # k, (H, W), (H, W)

The model's weights are untouched; its parameter gradients, training mode and
``needs_input_grad`` flags are restored afterwards (call it with the model to itself: a server
holds a lock).
"""
import numpy as np

from ..errors import ConfigError, ShapeError
from ..nn import Conv2D, Residual, Sequential, Softmax
from ..nn.module import is_grad_enabled


def _is_conv(layer):
    """A Conv2D, or a Residual block with a Conv2D inside (its output, the sum, is what Grad-CAM reads)."""
    return isinstance(layer, Conv2D) or isinstance(layer, Residual) and any(
        isinstance(m, Conv2D) for m in layer.modules())


def last_conv_index(model, end=None):
    """The index of the last top-level Conv2D layer or Residual block holding convolutions (before
    ``end``), or None. In a ResNet that is the last block: Grad-CAM reads its output feature maps."""
    layers = model.layers[:end]
    found = [i for i, layer in enumerate(layers) if _is_conv(layer)]
    return found[-1] if found else None


def upsample_bilinear(a, size):
    """(h, w) -> (H, W) by bilinear interpolation with half-pixel centres (PyTorch's
    ``interpolate(mode="bilinear", align_corners=False)``, OpenCV's ``resize``)."""
    a = np.asarray(a, dtype=np.float64)
    h, w = a.shape
    out_h, out_w = size

    def weights(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, pos - i0

    r0, r1, fr = weights(h, out_h)
    c0, c1, fc = weights(w, out_w)
    rows = a[r0] * (1 - fr)[:, None] + a[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc)[None, :] + rows[:, c1] * fc[None, :]


def grad_cam_from(feature_maps, grads):
    """Grad-CAM's formula on one example: ``feature_maps`` A and ``grads`` dA, both (C, h, w) ->
    ``ReLU(sum_c alpha_c A[c])`` (h, w) with ``alpha_c = mean(dA[c])``; also returns alpha (C,)."""
    a = np.asarray(feature_maps, dtype=np.float64)
    g = np.asarray(grads, dtype=np.float64)
    if a.ndim != 3 or a.shape != g.shape:
        raise ShapeError(f"grad_cam_from: feature maps and gradients must both be (C, h, w), got {a.shape} and "
                         f"{g.shape}")
    alpha = g.mean(axis=(1, 2))
    return np.maximum(np.tensordot(alpha, a, axes=1), 0.0), alpha


def explain(model, x, cls=None, layer=None):
    """Saliency and Grad-CAM of one input for class ``cls`` (None: the predicted class).

    model: a Sequential whose input is (C, H, W); x: one example (C, H, W) (or (1, C, H, W)).
    layer: the index of the conv layer for Grad-CAM (default the last Conv2D, or the last Residual
    block with convolutions inside: its output). The model runs
    in eval mode; the score is the class's logit (a final Softmax layer is left out). A model with
    ONE output (two classes, a sigmoid on the logit z) has probabilities ``[1 - s(z), s(z)]`` and
    scores ``z`` for class 1, ``-z`` for class 0.

    Returns ``{"class", "logits" (K,), "probabilities" (K,), "input_grad" (C, H, W): d score / d x,
    "saliency" (H, W): max_c |input_grad|, "grad_cam" (H, W) upsampled or None without a conv layer,
    "grad_cam_low" (h, w), "alpha" (C_conv,), "layer": the conv layer's index or None}``.
    """
    if not isinstance(model, Sequential):
        raise ConfigError(f"explain: expected a Sequential model, got {type(model).__name__}")
    if not is_grad_enabled():
        raise ConfigError("explain: gradients are off (inside no_grad); call it outside that block")
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or len(x) != 1:
        raise ShapeError(f"explain: expected one example (C, H, W), got shape {x.shape}")
    layers = model.layers
    end = len(layers) - 1 if layers and isinstance(layers[-1], Softmax) else len(layers)
    if layer is None:
        conv = last_conv_index(model, end)
    else:
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer < end or not _is_conv(layers[layer]):
            raise ConfigError(f"explain: layer {layer!r} is not the index of a Conv2D layer (or a Residual block "
                              f"with convolutions) of the model")
        conv = int(layer)
    modules = list(model.modules())
    saved_flags = [(m, m.training, m.needs_input_grad) for m in modules]
    saved_grads = [(p, p.grad.copy()) for p in model.parameters()]
    try:
        model.eval()
        for m in modules:
            m.needs_input_grad = True       # the first layer too: d score / d x is the point
        h = model._prepare_input(x)          # dtype and the model's shape check
        feature_maps = None
        for i in range(end):
            dtype = layers[i].dtype
            if dtype is not None and h.dtype != dtype:
                h = h.astype(dtype)
            h = layers[i].forward(h)
            if i == conv:
                feature_maps = h
        logits = np.asarray(h, dtype=np.float64).reshape(-1)
        one_output = logits.size == 1           # a two-class model with ONE sigmoid output (BCEWithLogitsLoss)
        k = 2 if one_output else logits.size
        if cls is None:
            cls = int(logits[0] > 0) if one_output else int(np.argmax(logits))
        if not isinstance(cls, (int, np.integer)) or isinstance(cls, bool) or not 0 <= cls < k:
            raise ConfigError(f"explain: class {cls!r} is out of range for {k} classes (0..{k - 1})")
        g = np.zeros_like(h)
        if one_output:
            g.reshape(-1)[0] = 1 if cls == 1 else -1    # the score of class 1 is the logit, of class 0 minus it
        else:
            g.reshape(-1)[int(cls)] = 1
        d_maps = None
        for i in reversed(range(end)):
            if i == conv:
                d_maps = g
            g = layers[i].backward(g)
        input_grad = np.asarray(g, dtype=np.float64)[0]
    finally:
        for m, training, needs in saved_flags:
            m.training = training
            m.needs_input_grad = needs
            m._clear_cache()
        for p, grad in saved_grads:
            p.grad[...] = grad
    if one_output:
        p1 = 1.0 / (1.0 + np.exp(-logits[0]))
        probabilities = np.array([1.0 - p1, p1])
    else:
        z = np.exp(logits - logits.max())
        probabilities = z / z.sum()
    out = {"class": int(cls), "logits": logits, "probabilities": probabilities, "input_grad": input_grad,
           "saliency": np.abs(input_grad).max(axis=0), "grad_cam": None, "grad_cam_low": None, "alpha": None,
           "layer": conv}
    if conv is not None:
        cam, alpha = grad_cam_from(np.asarray(feature_maps)[0], np.asarray(d_maps)[0])
        out.update(grad_cam_low=cam, alpha=alpha, grad_cam=upsample_bilinear(cam, x.shape[2:]))
    return out


# ---- pictures: a heat map over the input ----------------------------------------
#: anchors of the colour map (dark blue, blue, cyan, yellow, red), as matplotlib's "jet"
_ANCHORS = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def heat_colors(heat):
    """(H, W) values in 0..1 -> (H, W, 3) colours in 0..1 (blue for 0, red for 1)."""
    t = np.clip(np.asarray(heat, dtype=np.float64), 0, 1) * (len(_ANCHORS) - 1)
    i = np.minimum(np.floor(t).astype(np.int64), len(_ANCHORS) - 2)
    f = (t - i)[..., None]
    return _ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f


def normalize_heat(heat):
    """(H, W) -> 0..1 by its maximum (all zeros stay zeros: no evidence is shown as none)."""
    heat = np.maximum(np.asarray(heat, dtype=np.float64), 0)
    m = heat.max() if heat.size else 0.0
    return heat / m if m > 0 else np.zeros_like(heat)


def overlay(x, heat, strength=0.65):
    """The input ``x`` (C, H, W) in grey (or colour for C = 3), contrast-stretched, with ``heat``
    (H, W, 0..1) drawn over it in colour, more opaque where the heat is higher -> (H, W, 3) uint8."""
    x = np.asarray(x, dtype=np.float64)
    base = np.moveaxis(x, 0, -1) if x.shape[0] == 3 else np.repeat(x[0][..., None], 3, axis=-1)
    lo, span = base.min(), base.max() - base.min()
    base = (base - lo) / span if span > 0 else np.zeros_like(base)
    heat = np.clip(np.asarray(heat, dtype=np.float64), 0, 1)
    a = (strength * np.sqrt(heat))[..., None]
    mixed = base * (1 - a) + heat_colors(heat) * a
    return np.clip(np.rint(mixed * 255), 0, 255).astype(np.uint8)


__all__ = ["explain", "grad_cam_from", "heat_colors", "last_conv_index", "normalize_heat", "overlay",
           "upsample_bilinear"]
