"""Loops: every layer's maths written as naive Python loops, straight from the formulas.

Each function writes out the definition with explicit loops over every output
element (slow; for tests and for reading). Shapes follow the layers' docstrings.
"""
import numpy as np


def _pad(x, pads, value=0.0):
    t, b, l, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def conv2d_forward(x, w, b, stride, pads):
    """y[n, o, i, j] = b[o] + sum_{c, di, dj} w[o, c, di, dj] * xp[n, c, i*sh + di, j*sw + dj]."""
    xp = _pad(x, pads)
    n, c, hp, wp = xp.shape
    o, _, kh, kw = w.shape
    sh, sw = stride
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    y = np.zeros((n, o, oh, ow), dtype=np.float64)
    for ni in range(n):
        for oi in range(o):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[ni, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    y[ni, oi, i, j] = np.sum(patch * w[oi]) + (b[oi] if b is not None else 0.0)
    return y


def conv2d_backward(x, w, grad_out, stride, pads):
    """(dx, dw, db): every output element adds ``dy * w`` to its input patch and ``dy * patch`` to dw."""
    xp = _pad(x, pads)
    n, c, hp, wp = xp.shape
    o, _, kh, kw = w.shape
    sh, sw = stride
    oh, ow = grad_out.shape[2:]
    dxp = np.zeros(xp.shape)
    dw = np.zeros(w.shape)
    for ni in range(n):
        for oi in range(o):
            for i in range(oh):
                for j in range(ow):
                    g = grad_out[ni, oi, i, j]
                    dxp[ni, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += g * w[oi]
                    dw[oi] += g * xp[ni, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
    t, b, l, r = pads
    dx = dxp[:, :, t:hp - b, l:wp - r]
    return dx, dw, grad_out.sum(axis=(0, 2, 3))


def maxpool2d_forward_backward(x, kernel, stride, pads, grad_out=None):
    """y = max of each window; the gradient goes to the window's first maximum (row-major)."""
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
    """y = mean of each zero-padded window (divided by kh*kw); dy/(kh*kw) to every element."""
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
    """y[n, o] = sum_i x[n, i] w[o, i] + b[o], with its gradients, by loops."""
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
    """Per channel c: xhat = (x - mean) / sqrt(var + eps) over all (n, h, w) of c; y = gamma xhat + beta.
    Backward by the chain rule through mean and variance, channel by channel."""
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


def softmax_cross_entropy(logits, labels):
    """Loss and d loss / d logits for integer labels, one row at a time with math.exp."""
    import math
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
