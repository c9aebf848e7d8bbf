"""Vectorised array kernels shared by the layers: im2col / col2im and window views."""
from .im2col import (col2im, conv_output_size, im2col, normalize_padding, pad2d, pair,
                     unpad2d, window_view)

__all__ = ["col2im", "conv_output_size", "im2col", "normalize_padding", "pad2d", "pair",
           "unpad2d", "window_view"]
