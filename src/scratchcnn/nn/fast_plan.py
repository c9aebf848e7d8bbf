"""The fast path's plan for a chain of layers: the exact rewrites :class:`Sequential` runs.

``Sequential.forward`` runs its layers in order on the textbook path (:func:`~scratchcnn.textbook`).
On the fast path it runs the plan :func:`plan` makes from the same layers: two rewrites that give
the same values and gradients with less memory traffic, each undone by ``textbook()``.

* **ReLU, MaxPool2D -> MaxPool2D, ReLU.** ``maxpool(relu(x)) == relu(maxpool(x))`` exactly:
  ReLU is monotone, so every window's first maximum is the same element both ways, and a window
  whose maximum is <= 0 gets gradient 0 both ways (ReLU's derivative there is 0). After the
  swap the ReLU sees one value per window -- a quarter of them for 2x2 pools -- forward and
  backward (``Sequential.backward`` retraces the steps forward took, in reverse).
* **Conv2D, ReLU fused.** A Conv2D directly followed (after the swap) by a ReLU asks its fast
  kernel to apply the ReLU to each piece of its output while that piece is still in cache
  (``kernel.fuse_relu_once``, a one-shot request the kernel clears when it fulfils it) instead of
  the ReLU's own pass over the whole output; the ReLU keeps that output for its backward
  (``ReLU.keep_output``). In backward, a kernel that can (the one-channel convolution) also takes
  the ReLU's derivative ``dy * (y > 0)`` piece by piece (``kernel.relu_mask_once``). A kernel
  without these requests (or the textbook path, e.g. for an empty batch) leaves the ReLU to do
  its own work, as without the plan.

A plan is a list of steps ``(index, layer, fused_relu)``: the layer's index in the Sequential, the
layer, and the ReLU fused into it (None: none).
"""
from .activations import ReLU
from .conv import Conv2D
from .pool import MaxPool2D


def textbook_plan(layers):
    """Every layer in order, nothing fused."""
    return [(i, layer, None) for i, layer in enumerate(layers)]


def plan(layers):
    """The fast path's steps for the sequence ``layers`` (see the module docstring)."""
    order = list(enumerate(layers))
    for k in range(len(order) - 1):               # ReLU, MaxPool2D -> MaxPool2D, ReLU (a ReLU bubbles
        if type(order[k][1]) is ReLU and type(order[k + 1][1]) is MaxPool2D:       # past each pool)
            order[k], order[k + 1] = order[k + 1], order[k]
    steps, k = [], 0
    while k < len(order):
        i, layer = order[k]
        relu = order[k + 1][1] if k + 1 < len(order) and type(order[k + 1][1]) is ReLU else None
        relu = relu if isinstance(layer, Conv2D) else None
        steps.append((i, layer, relu))
        k += 1 if relu is None else 2
    return steps


def forward(step, x):
    """Run one step's forward on ``x``."""
    _, layer, relu = step
    if relu is None:
        return layer.forward(x)
    kernel = layer.fast_kernel()
    if not hasattr(kernel, "fuse_relu_once"):
        return relu.forward(layer.forward(x))
    kernel.fuse_relu_once = True                  # a one-shot request, cleared by the kernel that fuses
    try:
        y = layer.forward(x)
    finally:
        fused, kernel.fuse_relu_once = not kernel.fuse_relu_once, False
    if not fused:
        return relu.forward(y)
    relu._note_forward()                          # the kernel did the ReLU's forward: its backward may run
    return relu.keep_output(y)


def backward(step, grad):
    """Run one step's backward on ``grad``; returns d loss / d (the step's input) or None."""
    _, layer, relu = step
    if relu is None:
        return layer.backward(grad)
    kernel = layer.kernel_in_use                  # Conv2D.backward hands the work to this kernel
    if kernel is None or not hasattr(kernel, "relu_mask_once") or relu.output is None:
        return layer.backward(relu.backward(grad))
    kernel.relu_mask_once = relu.output           # one-shot, cleared by the kernel
    try:
        dx = layer.backward(grad)
    finally:
        taken, kernel.relu_mask_once = kernel.relu_mask_once is None, None
    if not taken:
        raise RuntimeError(f"{layer!r}: its backward did not run the kernel that took the ReLU's derivative")
    return dx
