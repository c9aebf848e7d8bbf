"""Fast kernels: the layers' maths computed with less work or memory traffic.

A layer's own ``forward`` / ``backward`` is its textbook path; where one of these kernels
computes the same maths faster, the layer hands it the work in a few lines (unless
:func:`textbook` is on). Every kernel has one contract (:mod:`.conv_kernel` writes it down)::

    y, saved = kernel.forward(x, weight, bias, keep_for_backward)
    grad_x, grad_weight, grad_bias = kernel.backward(saved, grad_y, weight)

``saved`` being a named tuple of what backward needs (None when nothing is kept).

* :mod:`.im2col` -- im2col / col2im, padding and window views on NCHW arrays (used by the
  textbook paths themselves);
* :mod:`.conv_kernel` -- the convolution kernels' shared contract and piece-size rule;
* :mod:`.conv_channels_last` -- Conv2D as channels-last im2col in cache-sized pieces
  (helpers in :mod:`.conv_nhwc`);
* :mod:`.conv_one_channel` -- Conv2D with one input channel as one batched NCHW product;
* :mod:`.conv_winograd` -- Conv2D 3x3 stride 1 as Winograd F(2x2, 3x3) (the maths in :mod:`.winograd`);
* :mod:`.conv_grouped` -- Conv2D with dilation or groups as channels-last dilated im2col and one
  batched product over the groups;
* :mod:`.conv_depthwise` -- depthwise Conv2D (groups == in_channels) as one broadcast multiply-add
  per kernel offset;
* :mod:`.dense_blocks` -- Dense's backward products for wide layers, cut into the blocks BLAS runs
  fastest (measured once per shape);
* :mod:`.pool_tiled` -- MaxPool2D by strided views when the windows tile the input;
* :mod:`.batchnorm_views` -- BatchNorm on (M, C) rows or (N, C, H*W) planes, sums by BLAS;
* :mod:`.workspace` -- reusable buffers;
* :mod:`.textbook` -- the switch that makes every layer run its textbook path;
* :mod:`.allocator` -- keeps freed memory in the process (no page faults every batch).
"""
from . import batchnorm_views, pool_tiled
from .allocator import allocator_tuned, keep_freed_memory, tune_allocator
from .batchnorm_views import BatchNormSaved, BatchStats
from .conv_channels_last import ChannelsLastConv, ChannelsLastSaved
from .conv_depthwise import DepthwiseConv, DepthwiseSaved
from .conv_grouped import DilatedGroupedKernel, GroupedConv, GroupedSaved
from .conv_kernel import ConvKernel
from .conv_nhwc import (col2im_nhwc, conv_input_grad_nhwc, flipped_weight_rows, im2col_nhwc, pad_nhwc,
                        weight_from_rows, weight_rows)
from .conv_one_channel import OneChannelConv, OneChannelSaved, col2im_one_channel, im2col_one_channel
from .conv_winograd import WinogradConv, WinogradSaved
from .im2col import (by_group, col2im, conv_output_size, dilated_extent, im2col, normalize_padding, pad2d,
                     pair, ungroup, unpad2d, window_view)
from .pool_tiled import TiledMaxPoolSaved
from .textbook import textbook, textbook_enabled, use_textbook
from .workspace import Workspace, shared_workspace

__all__ = [
    "BatchNormSaved", "BatchStats", "ChannelsLastConv", "ChannelsLastSaved", "ConvKernel", "DepthwiseConv",
    "DepthwiseSaved", "DilatedGroupedKernel", "GroupedConv", "GroupedSaved", "OneChannelConv",
    "OneChannelSaved", "TiledMaxPoolSaved", "WinogradConv", "WinogradSaved", "Workspace", "allocator_tuned",
    "batchnorm_views", "by_group", "col2im", "col2im_nhwc", "col2im_one_channel", "conv_input_grad_nhwc",
    "conv_output_size", "dilated_extent", "flipped_weight_rows", "im2col", "im2col_nhwc", "im2col_one_channel",
    "keep_freed_memory", "normalize_padding", "pad2d", "pad_nhwc", "pair", "pool_tiled", "shared_workspace",
    "textbook", "textbook_enabled", "tune_allocator", "ungroup", "unpad2d", "use_textbook", "weight_from_rows",
    "weight_rows", "window_view",
]
