"""The contract every fast convolution kernel of :class:`scratchcnn.nn.Conv2D` follows.

A kernel computes exactly what Conv2D's textbook ``forward`` / ``backward`` compute (NCHW
im2col, one matrix product, col2im), with less work or memory traffic. It is a small object
built once per layer from the layer's fixed geometry and kept by the layer::

    kernel = ChannelsLastConv(kernel_size, stride, pads, in_channels, out_channels)
    y, saved = kernel.forward(x, weight, bias, keep_for_backward)     # bias may be None
    grad_x, grad_weight, grad_bias = kernel.backward(saved, grad_y, weight,
                                                     need_input_grad=True, need_weight_grad=True)
    kernel.clear()                                                     # drop the workspaces

* ``x: (N, C_in, H, W)`` in any memory order; ``y: (N, C_out, OH, OW)`` (which memory order
  is the kernel's choice: channels-last kernels return NCHW-shaped views of NHWC memory).
* ``saved`` is a named tuple of the kernel's own (``ChannelsLastSaved``, ...) holding what
  backward reads, or None when ``keep_for_backward`` is False.
* ``backward`` returns the three gradients; an entry not asked for (or, for ``grad_bias``, a
  forward pass without bias) is None. ``need_weight_grad`` covers the weight and the bias.
  The caller adds ``grad_weight`` / ``grad_bias`` to the parameters' gradients.
* The batch is processed in pieces of at most ``max_piece_elements`` scratch entries (im2col
  columns or Winograd tiles), so that each piece is multiplied while it is still in the
  processor's cache and inference memory stays bounded whatever the batch size. Reused
  buffers live in the kernel's :class:`~scratchcnn.kernels.workspace.Workspace` (what must
  survive until backward, or keeps a zero border) or in the shared workspace (scratch used
  only inside one call).
* Optional one-shot requests, used by :mod:`scratchcnn.nn.fast_plan` to fuse a following ReLU:
  a kernel with ``fuse_relu_once`` returns ``max(y, 0)`` from its next forward when the flag
  is set, and clears it; one with ``relu_mask_once`` (set to the ReLU's output ``y``) multiplies
  ``grad_y`` by ``y > 0`` in its next backward, and clears it.
"""
from .im2col import conv_output_size
from .workspace import Workspace


class ConvKernel:
    """Geometry, workspace and piece rule shared by the convolution kernels."""

    #: Scratch entries (im2col columns or Winograd tiles) per piece of the batch: 2 MB of
    #: float32, which fits in the L2 / L3 cache (docs/performance.md has the measurements).
    max_piece_elements = 1 << 19

    def __init__(self, kernel_size, stride, pads, in_channels, out_channels):
        self.kernel_size, self.stride, self.pads = tuple(kernel_size), tuple(stride), tuple(pads)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.workspace = Workspace()

    @property
    def geometry(self):
        """What the kernel was built from: a layer whose geometry differs needs a new kernel."""
        return (self.kernel_size, self.stride, self.pads, self.in_channels, self.out_channels)

    def images_per_piece(self, n, entries_per_image):
        """As many images as keep a piece's scratch (``entries_per_image`` each) within
        ``max_piece_elements``; at least 1, at most ``n``."""
        return max(1, min(n, self.max_piece_elements // entries_per_image))

    def out_size(self, h, w):
        """``(OH, OW)`` for an ``H x W`` input (PyTorch's floor rule)."""
        t, b, l, r = self.pads
        return (conv_output_size(h, self.kernel_size[0], self.stride[0], t, b),
                conv_output_size(w, self.kernel_size[1], self.stride[1], l, r))

    def clear(self):
        """Drop the reused buffers (they are allocated again on the next call)."""
        self.workspace.clear()

    def __repr__(self):
        k, s = self.kernel_size, self.stride
        return (f"{type(self).__name__}({self.in_channels} -> {self.out_channels}, "
                f"kernel {k[0]}x{k[1]}, stride {s[0]}x{s[1]}, pads {self.pads})")
