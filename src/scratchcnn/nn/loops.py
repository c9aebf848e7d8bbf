"""Loops: every layer's maths written as naive Python loops, straight from the formulas.

scratchcnn has three implementations of each layer's maths (see :mod:`scratchcnn.kernels.textbook`):
**loops** (this module), **the textbook path** (the layer's own ``forward`` / ``backward``, the
plain vectorised algorithm) and **fast kernels** (:mod:`scratchcnn.kernels`, the same maths
faster). Each function here writes out the definition with explicit loops over every output
element, in float64: slow, written to be read, and the yardstick the tests hold the other two
to (tests/test_layers.py, tests/test_fast_paths.py). Shapes follow the layers' docstrings.

Each function and the layer it checks:

* :func:`conv2d_forward`, :func:`conv2d_backward` -- :class:`scratchcnn.nn.Conv2D` (stride, padding,
  dilation, groups)
* :func:`maxpool2d_forward_backward` -- :class:`scratchcnn.nn.MaxPool2D`
* :func:`avgpool2d_forward_backward` -- :class:`scratchcnn.nn.AvgPool2D`
* :func:`global_avgpool2d_forward_backward` -- :class:`scratchcnn.nn.GlobalAvgPool2D`
* :func:`dense_forward_backward` -- :class:`scratchcnn.nn.Dense`
* :func:`batchnorm_train_forward_backward` -- :class:`scratchcnn.nn.BatchNorm2D` and
  :class:`scratchcnn.nn.BatchNorm1D` in training mode
* :func:`batchnorm_eval_forward_backward` -- the same two in eval mode
* :func:`elementwise_forward_backward` -- :class:`scratchcnn.nn.ReLU`, :class:`scratchcnn.nn.LeakyReLU`,
  :class:`scratchcnn.nn.Sigmoid`, :class:`scratchcnn.nn.Tanh`
* :func:`softmax_forward_backward` -- :class:`scratchcnn.nn.Softmax`
* :func:`softmax_cross_entropy` -- :class:`scratchcnn.CrossEntropyLoss`
* :func:`layernorm_forward_backward` -- :class:`scratchcnn.nn.LayerNorm`
* :func:`groupnorm_forward_backward` -- :class:`scratchcnn.nn.GroupNorm`

Flatten (a reshape) and Dropout (a random mask; identity in eval) have no loop; nor has Residual,
a sum of two branches, which tests/test_residual.py checks against the branches run apart.
"""
import math

import numpy as np


def _pad(x, pads, value=0.0):
    t, b, l, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _conv_patch(ni, oi, i, j, w_shape, stride, dilation, groups):
    """The index in ``xp`` of output ``(ni, oi, i, j)``'s receptive field: the C_in/G channels of
    output channel ``oi``'s group, rows ``i*sh + di*dh`` and columns ``j*sw + dj*dw``."""
    o, cg, kh, kw = w_shape
    (sh, sw), (dh, dw) = stride, dilation
    g = oi // (o // groups)                                        # the group of output channel oi
    return (ni, slice(g * cg, (g + 1) * cg), slice(i * sh, i * sh + dh * (kh - 1) + 1, dh),
            slice(j * sw, j * sw + dw * (kw - 1) + 1, dw))


def conv2d_forward(x, w, b, stride, pads, dilation=(1, 1), groups=1):
    """y[n, o, i, j] = b[o] + sum_{c, di, dj} w[o, c, di, dj] * xp[n, g*C_in/G + c, i*sh + di*dh, j*sw + dj*dw],
    ``g = o // (C_out/G)`` the group of output channel o (w: (C_out, C_in/G, kh, kw)).
    Checks :class:`scratchcnn.nn.Conv2D` (forward)."""
    xp = _pad(x, pads)
    n, c, hp, wp = xp.shape
    o, cg, kh, kw = w.shape
    assert cg * groups == c and o % groups == 0, "w must be (C_out, C_in/groups, kh, kw)"
    (sh, sw), (dh, dw) = stride, dilation
    oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow), dtype=np.float64)
    for ni in range(n):
        for oi in range(o):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[_conv_patch(ni, oi, i, j, w.shape, stride, dilation, groups)]
                    y[ni, oi, i, j] = np.sum(patch * w[oi]) + (b[oi] if b is not None else 0.0)
    return y


def conv2d_backward(x, w, grad_out, stride, pads, dilation=(1, 1), groups=1):
    """(dx, dw, db): every output element adds ``dy * w`` to its input patch (the dilated taps of
    its group's channels) and ``dy * patch`` to dw. Checks :class:`scratchcnn.nn.Conv2D` (backward)."""
    xp = _pad(x, pads)
    n, c, hp, wp = xp.shape
    o, cg, kh, kw = w.shape
    assert cg * groups == c and o % groups == 0, "w must be (C_out, C_in/groups, kh, kw)"
    oh, ow = grad_out.shape[2:]
    dxp = np.zeros(xp.shape)
    dw = np.zeros(w.shape)
    for ni in range(n):
        for oi in range(o):
            for i in range(oh):
                for j in range(ow):
                    g = grad_out[ni, oi, i, j]
                    patch = _conv_patch(ni, oi, i, j, w.shape, stride, dilation, groups)
                    dxp[patch] += g * w[oi]
                    dw[oi] += g * xp[patch]
    t, b, l, r = pads
    dx = dxp[:, :, t:hp - b, l:wp - r]
    return dx, dw, grad_out.sum(axis=(0, 2, 3))


def maxpool2d_forward_backward(x, kernel, stride, pads, grad_out=None):
    """(y, dx): y = max of each window; the gradient goes to the window's first maximum (row-major).
    Checks :class:`scratchcnn.nn.MaxPool2D`, its textbook path and its fast kernel."""
    xp = _pad(x, pads, value=-np.inf)
    n, c, hp, wp = xp.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    y = np.zeros((n, c, oh, ow))
    dxp = np.zeros(xp.shape)
    for ni in range(n):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    best, bi, bj = -np.inf, 0, 0
                    for di in range(kh):
                        for dj in range(kw):
                            v = xp[ni, ci, i * sh + di, j * sw + dj]
                            if v > best:
                                best, bi, bj = v, di, dj
                    y[ni, ci, i, j] = best
                    if grad_out is not None:
                        dxp[ni, ci, i * sh + bi, j * sw + bj] += grad_out[ni, ci, i, j]
    t, b, l, r = pads
    return y, dxp[:, :, t:hp - b, l:wp - r]


def avgpool2d_forward_backward(x, kernel, stride, pads, grad_out=None):
    """(y, dx): y = mean of each zero-padded window (divided by kh*kw); dy/(kh*kw) to every element.
    Checks :class:`scratchcnn.nn.AvgPool2D`."""
    xp = _pad(x, pads)
    n, c, hp, wp = xp.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    y = np.zeros((n, c, oh, ow))
    dxp = np.zeros(xp.shape)
    for ni in range(n):
        for ci in range(c):
            for i in range(oh):
                for j in range(ow):
                    y[ni, ci, i, j] = xp[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw].sum() / (kh * kw)
                    if grad_out is not None:
                        dxp[ni, ci, i * sh:i * sh + kh, j * sw:j * sw + kw] += grad_out[ni, ci, i, j] / (kh * kw)
    t, b, l, r = pads
    return y, dxp[:, :, t:hp - b, l:wp - r]


def dense_forward_backward(x, w, b, grad_out):
    """(y, dx, dw, db): y[n, o] = sum_i x[n, i] w[o, i] + b[o], with its gradients, by loops.
    Checks :class:`scratchcnn.nn.Dense`."""
    n, din = x.shape
    dout = w.shape[0]
    y = np.zeros((n, dout))
    dx, dw, db = np.zeros(x.shape), np.zeros(w.shape), np.zeros(dout)
    for ni in range(n):
        for o in range(dout):
            y[ni, o] = sum(x[ni, i] * w[o, i] for i in range(din)) + b[o]
            g = grad_out[ni, o]
            db[o] += g
            for i in range(din):
                dw[o, i] += g * x[ni, i]
                dx[ni, i] += g * w[o, i]
    return y, dx, dw, db


def batchnorm_train_forward_backward(x, gamma, beta, eps, grad_out):
    """(y, dx, dgamma, dbeta) in training mode. Per channel c: xhat = (x - mean) / sqrt(var + eps)
    over all (n, h, w) of c (or all n of a 2-D x); y = gamma xhat + beta. Checks
    :class:`scratchcnn.nn.BatchNorm2D` and :class:`scratchcnn.nn.BatchNorm1D` in training.

    Backward by the chain rule through mean and variance, channel by channel: ``dvar``, then
    ``dmean``, then ``dx = dxhat * invstd + dvar * 2 (x - mean) / m + dmean / m``. One of three
    closed forms of this derivative: the textbook path (``BatchNorm2D.backward``) writes
    ``invstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))``, the fast kernel
    (:func:`scratchcnn.kernels.batchnorm_views.backward`) ``a * dy - a / m * (dbeta + xhat * dgamma)``,
    ``a = gamma * invstd``. Equal: here ``dmean = -invstd * sum(dxhat)`` (``sum(x - mean) = 0``) and
    ``dvar * 2 (x - mean) = -invstd * xhat * sum(dxhat * xhat)``, which is the textbook form; and
    ``sum(dxhat) = gamma * dbeta``, ``sum(dxhat * xhat) = gamma * dgamma`` turn that into the kernel's.
    """
    x2 = x if x.ndim == 4 else x[:, :, None, None]
    g2 = grad_out if grad_out.ndim == 4 else grad_out[:, :, None, None]
    y = np.zeros(x2.shape)
    dx = np.zeros(x2.shape)
    dgamma, dbeta = np.zeros(len(gamma)), np.zeros(len(gamma))
    for c in range(x2.shape[1]):
        v = x2[:, c].astype(np.float64)
        m = v.size
        mean = v.sum() / m
        var = ((v - mean) ** 2).sum() / m
        xhat = (v - mean) / np.sqrt(var + eps)
        y[:, c] = gamma[c] * xhat + beta[c]
        g = g2[:, c]
        dgamma[c] = (g * xhat).sum()
        dbeta[c] = g.sum()
        dxhat = g * gamma[c]
        dvar = (dxhat * (v - mean)).sum() * -0.5 * (var + eps) ** -1.5
        dmean = -dxhat.sum() / np.sqrt(var + eps) + dvar * (-2 * (v - mean)).sum() / m
        dx[:, c] = dxhat / np.sqrt(var + eps) + dvar * 2 * (v - mean) / m + dmean / m
    if x.ndim == 2:
        y, dx = y[:, :, 0, 0], dx[:, :, 0, 0]
    return y, dx, dgamma, dbeta


def batchnorm_eval_forward_backward(x, gamma, beta, running_mean, running_var, eps, grad_out):
    """(y, dx, dgamma, dbeta) in eval mode: per channel c, xhat = (x - running_mean[c]) /
    sqrt(running_var[c] + eps), y = gamma xhat + beta; the statistics are constants, so
    dx = gamma dy / sqrt(running_var[c] + eps). Element by element over (n, c, h, w) (or (n, c)).
    Checks :class:`scratchcnn.nn.BatchNorm2D` and :class:`scratchcnn.nn.BatchNorm1D` in eval."""
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    dgamma, dbeta = np.zeros(len(gamma)), np.zeros(len(gamma))
    for index in np.ndindex(*x.shape):
        c = index[1]
        invstd = 1.0 / math.sqrt(float(running_var[c]) + eps)
        xhat = (float(x[index]) - float(running_mean[c])) * invstd
        g = float(grad_out[index])
        y[index] = gamma[c] * xhat + beta[c]
        dx[index] = g * gamma[c] * invstd
        dgamma[c] += g * xhat
        dbeta[c] += g
    return y, dx, dgamma, dbeta


def global_avgpool2d_forward_backward(x, grad_out):
    """(y, dx): y[n, c] = sum over (i, j) of x[n, c, i, j] / (H*W); every element gets dy[n, c] / (H*W).
    Checks :class:`scratchcnn.nn.GlobalAvgPool2D`."""
    n, c, h, w = x.shape
    y, dx = np.zeros((n, c)), np.zeros(x.shape)
    for ni in range(n):
        for ci in range(c):
            total = 0.0
            for i in range(h):
                for j in range(w):
                    total += x[ni, ci, i, j]
                    dx[ni, ci, i, j] = grad_out[ni, ci] / (h * w)
            y[ni, ci] = total / (h * w)
    return y, dx


def elementwise_forward_backward(name, x, grad_out, negative_slope=0.01):
    """(y, dx) of an element-wise activation, one scalar at a time with :mod:`math`:
    ``"relu"`` (:class:`scratchcnn.nn.ReLU`), ``"leaky_relu"`` (:class:`scratchcnn.nn.LeakyReLU`,
    slope ``negative_slope``), ``"sigmoid"`` (:class:`scratchcnn.nn.Sigmoid`), ``"tanh"``
    (:class:`scratchcnn.nn.Tanh`); dx = dy * f'(x)."""
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        v, g = float(x[index]), float(grad_out[index])
        if name == "relu":
            y[index], dx[index] = (v, g) if v > 0 else (0.0, 0.0)
        elif name == "leaky_relu":
            y[index], dx[index] = (v, g) if v > 0 else (negative_slope * v, negative_slope * g)
        elif name == "sigmoid":
            s = 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))
            y[index], dx[index] = s, g * s * (1 - s)
        elif name == "tanh":
            t = math.tanh(v)
            y[index], dx[index] = t, g * (1 - t * t)
        else:
            raise ValueError(f"unknown activation {name!r}")
    return y, dx


def softmax_forward_backward(x, grad_out):
    """(y, dx) for x: (N, K), softmax over K: y[n, i] = exp(x[n, i]) / sum_k exp(x[n, k]) (the
    row's maximum subtracted first), and dx[n, j] = sum_i dy[n, i] * J[i, j] with the Jacobian
    J[i, j] = y[n, i] * ((i == j) - y[n, j]). Checks :class:`scratchcnn.nn.Softmax` (dim=1)."""
    n, k = x.shape
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    for ni in range(n):
        mx = max(float(v) for v in x[ni])
        exps = [math.exp(float(v) - mx) for v in x[ni]]
        total = sum(exps)
        for i in range(k):
            y[ni, i] = exps[i] / total
        for j in range(k):
            dx[ni, j] = sum(grad_out[ni, i] * y[ni, i] * ((1.0 if i == j else 0.0) - y[ni, j]) for i in range(k))
    return y, dx


def softmax_cross_entropy(logits, labels):
    """Loss and d loss / d logits for integer labels, one row at a time with math.exp.
    Checks :class:`scratchcnn.CrossEntropyLoss`."""
    n, k = logits.shape
    total = 0.0
    grad = np.zeros(logits.shape)
    for i in range(n):
        row = [float(v) for v in logits[i]]
        mx = max(row)
        exps = [math.exp(v - mx) for v in row]
        s = sum(exps)
        total += -(row[labels[i]] - mx - math.log(s))
        for j in range(k):
            grad[i, j] = (exps[j] / s - (1.0 if j == labels[i] else 0.0)) / n
    return total / n, grad


def _normalize_one_group(values, gammas, betas, grads, eps):
    """One normalisation group, scalar by scalar: ``values`` the group's x (a list of floats), ``gammas``,
    ``betas`` the weight and bias of each value, ``grads`` dy. Returns (y, dx, dgamma, dbeta) as lists,
    one entry per value. Backward by the chain rule through the mean and the variance, as
    :func:`batchnorm_train_forward_backward`: ``dvar = sum(dxhat (x - mean)) * -1/2 (var + eps)^-3/2``,
    ``dmean = -sum(dxhat) invstd + dvar * sum(-2 (x - mean)) / m``, ``dx = dxhat invstd + dvar 2 (x - mean) / m
    + dmean / m``: equal to the layers' closed form ``invstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))``."""
    m = len(values)
    mean = sum(values) / m
    var = sum((v - mean) ** 2 for v in values) / m
    invstd = 1.0 / math.sqrt(var + eps)
    xhat = [(v - mean) * invstd for v in values]
    y = [g * h + b for g, h, b in zip(gammas, xhat, betas)]
    dxhat = [dy * g for dy, g in zip(grads, gammas)]
    dvar = sum(d * (v - mean) for d, v in zip(dxhat, values)) * -0.5 * (var + eps) ** -1.5
    dmean = -sum(dxhat) * invstd + dvar * sum(-2 * (v - mean) for v in values) / m
    dx = [d * invstd + dvar * 2 * (v - mean) / m + dmean / m for d, v in zip(dxhat, values)]
    return y, dx, [dy * h for dy, h in zip(grads, xhat)], list(grads)


def layernorm_forward_backward(x, normalized_ndim, gamma, beta, eps, grad_out):
    """(y, dx, dgamma, dbeta) of a LayerNorm over the last ``normalized_ndim`` axes of x: for each index
    of the leading axes, its trailing block of values is one group (:func:`_normalize_one_group`), with
    ``gamma[j]``, ``beta[j]`` at trailing position j (None for ``elementwise_affine=False``: 1 and 0, and
    dgamma, dbeta are None). Checks :class:`scratchcnn.nn.LayerNorm`."""
    lead, trail = x.shape[:x.ndim - normalized_ndim], x.shape[x.ndim - normalized_ndim:]
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    dgamma, dbeta = np.zeros(trail), np.zeros(trail)
    positions = list(np.ndindex(*trail))
    gammas = [1.0 if gamma is None else float(gamma[j]) for j in positions]
    betas = [0.0 if beta is None else float(beta[j]) for j in positions]
    for i in np.ndindex(*lead):
        values = [float(x[i + j]) for j in positions]
        grads = [float(grad_out[i + j]) for j in positions]
        yg, dxg, dgg, dbg = _normalize_one_group(values, gammas, betas, grads, eps)
        for k, j in enumerate(positions):
            y[i + j], dx[i + j] = yg[k], dxg[k]
            dgamma[j] += dgg[k]
            dbeta[j] += dbg[k]
    return (y, dx) + ((dgamma, dbeta) if gamma is not None else (None, None))


def groupnorm_forward_backward(x, num_groups, gamma, beta, eps, grad_out):
    """(y, dx, dgamma, dbeta) of a GroupNorm of x: (N, C, *): for each example n and group g, the values
    of channels g*C/G .. (g+1)*C/G - 1 at every position of * are one group (:func:`_normalize_one_group`),
    with ``gamma[c]``, ``beta[c]`` of each value's channel c (None for ``affine=False``: 1 and 0, and
    dgamma, dbeta are None). Checks :class:`scratchcnn.nn.GroupNorm`."""
    n, c = x.shape[:2]
    per = c // num_groups
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    dgamma, dbeta = np.zeros(c), np.zeros(c)
    for ni in range(n):
        for g in range(num_groups):
            where = [(ni, ci) + s for ci in range(g * per, (g + 1) * per) for s in np.ndindex(*x.shape[2:])]
            gammas = [1.0 if gamma is None else float(gamma[w[1]]) for w in where]
            betas = [0.0 if beta is None else float(beta[w[1]]) for w in where]
            yg, dxg, dgg, dbg = _normalize_one_group([float(x[w]) for w in where], gammas, betas,
                                                     [float(grad_out[w]) for w in where], eps)
            for k, w in enumerate(where):
                y[w], dx[w] = yg[k], dxg[k]
                dgamma[w[1]] += dgg[k]
                dbeta[w[1]] += dbg[k]
    return (y, dx) + ((dgamma, dbeta) if gamma is not None else (None, None))
