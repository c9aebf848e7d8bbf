"""Vectorised array kernels shared by the layers.

* :mod:`.im2col` -- im2col / col2im and window views on NCHW arrays (the textbook paths);
* :mod:`.conv_nhwc` -- the fast channels-last convolution kernels;
* :mod:`.winograd` -- Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions;
* :mod:`.pool_tiled` -- max pooling by strided views when windows tile the input;
* :mod:`.workspace` -- reusable buffers;
* :mod:`.textbook` -- the switch that makes every layer run its textbook path;
* :mod:`.allocator` -- keeps freed memory in the process (no page faults every batch).
"""
from .allocator import allocator_tuned, keep_freed_memory, tune_allocator
from .conv_nhwc import (col2im_nhwc, col2im_one_channel, im2col_one_channel, conv_input_grad_nhwc, flipped_weight_rows, im2col_nhwc, pad_nhwc,
                        weight_from_rows, weight_rows)
from .im2col import (col2im, conv_output_size, im2col, normalize_padding, pad2d, pair,
                     unpad2d, window_view)
from .pool_tiled import maxpool_tiled_backward, maxpool_tiled_forward
from .textbook import textbook, textbook_enabled, use_textbook
from .workspace import Workspace, shared_workspace

__all__ = ["Workspace", "allocator_tuned", "keep_freed_memory", "tune_allocator", "col2im", "col2im_nhwc", "col2im_one_channel", "im2col_one_channel", "conv_input_grad_nhwc", "flipped_weight_rows",
           "conv_output_size", "im2col",
           "im2col_nhwc", "maxpool_tiled_backward", "maxpool_tiled_forward", "normalize_padding",
           "pad2d", "pad_nhwc", "pair", "shared_workspace", "unpad2d",
           "textbook", "textbook_enabled", "use_textbook", "weight_from_rows", "weight_rows", "window_view"]
