"""Data-parallel training on the cores of one machine: ``fit(..., workers=N)``.

NumPy and BLAS let go of Python's global lock while they compute, so N threads can each run
the whole network on a part of the batch at the same time. One step with N workers::

    shards = split(xb, N)                          # along the batch axis: m_1 + ... + m_N = M
    in N threads at once:                          # worker i: replica i, BLAS on 1 of the N cores
        out_i = replica_i(shard_i)                 # the model's layers, own caches, the SAME weights
        loss_i = crit_i(out_i, y_i)
        replica_i.backward(crit_i.backward() * m_i / M)    # the shard's share of the batch mean
    p.grad = sum_i p_i.grad                        # = d (mean loss of the whole batch) / d p
    optimizer.step()                               # once, on the model's parameters (in fit)

Replica 0 is the model itself (its shard runs in the calling thread); the others are copies
made once per ``fit`` whose parameters hold the model's own weight arrays (the optimizer
updates them in place, so every replica sees each step) and gradients of their own. For a
loss with ``reduction="sum"`` the shards' gradients are simply added (weight 1).

What differs from one worker, as in PyTorch's ``nn.DataParallel`` without SyncBatchNorm:
BatchNorm normalises each shard with that shard's own statistics ("ghost" batch norm: batch
128 on 2 workers normalises over 64 examples at a time), and after every step the running
estimates become the mean of the replicas' (each replica moved the same old estimate towards
its shard's statistics). Dropout in worker i draws from a generator of its own, seeded from
the shared one's state (:func:`scratchcnn.get_rng`) when ``fit`` starts, so a seeded run is
repeatable and shuffles and augments exactly as it would with one worker. A model without
BatchNorm or dropout takes the one-worker step to rounding (the same sums, added in another
order). A batch is cut into at most ``len(xb) // 2`` shards, so
no shard holds a single example (BatchNorm cannot normalise one value per channel).
"""
import copy
import hashlib
import math
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .optim import check_number
from .random import get_rng, thread_rng
from .threads import blas_threads, get_num_threads

#: what a replica does not copy from the model (fit's attachments, not layers)
_NOT_COPIED = ("optimizer", "history", "metadata")


def check_workers(workers, who="fit"):
    """``workers`` as an int >= 1, else ConfigError naming ``who``."""
    return check_number(who, "workers", workers, low=1, integer=True)


def replicate(model):
    """A copy of ``model`` whose parameters share the model's weight arrays (``p.data`` is the
    same array) and have gradients of their own; buffers and forward caches are its own, the
    training attachments (optimizer, history, metadata) are left out."""
    memo = {id(p.data): p.data for p in model.parameters()}
    for name in _NOT_COPIED:
        if name in model.__dict__:
            memo[id(model.__dict__[name])] = None
    rep = copy.deepcopy(model, memo)
    for p in rep.parameters():
        p.grad = np.zeros_like(p.data)
    for m in rep.modules():
        m._clear_cache()
    return rep


def worker_generators(n):
    """``n`` generators seeded from the shared generator's *state*, which they leave as it is:
    the shuffling and augmentation of a run draw the same numbers with any number of workers."""
    digest = hashlib.sha256(repr(get_rng().bit_generator.state).encode()).digest()
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int.from_bytes(digest, "big")).spawn(n)]


class DataParallel:
    """The replicas, criteria, generators and threads of one ``fit(..., workers=N)``.

    ``forward_backward(xb, yb)`` runs one step's forward and backward passes on shards of the
    batch and leaves the whole batch's gradient in the model's ``p.grad`` (which the caller
    has zeroed); ``close()`` stops the threads. Use it inside ``with dp.blas_limit():`` so that
    the N workers together use the BLAS threads one worker would (``threads``, default the
    current BLAS limit; each worker gets at least one).
    """

    def __init__(self, model, crit, workers, threads=None):
        self.model, self.workers = model, check_workers(workers)
        self.replicas = [model] + [replicate(model) for _ in range(self.workers - 1)]
        for rep in self.replicas[1:]:
            rep.train(model.training)
        self.crits = [crit] + [copy.deepcopy(crit) for _ in range(self.workers - 1)]
        self.rngs = worker_generators(self.workers)
        self.pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="scratchcnn-worker") \
            if self.workers > 1 else None
        # the BLAS threads one worker would use (default: the current limit), shared out
        self.threads_per_worker = max(1, (threads or get_num_threads()) // self.workers)
        params = [rep.parameters() for rep in self.replicas]
        self.grads = [(p, [ps[i] for ps in params[1:]]) for i, p in enumerate(params[0])]
        self.modules = list(zip(*(rep.modules() for rep in self.replicas)))
        self.with_buffers = [mods for mods in self.modules if mods[0]._buffers]
        self.summed = getattr(crit, "reduction", "mean") == "sum"

    def sync_modes(self):
        """Each replica's modules train / evaluate as the model's do, and its parameters are
        frozen where the model's are (fit calls this at the start of every epoch)."""
        for mods in self.modules:
            for m in mods[1:]:
                m.training = mods[0].training
        for p, others in self.grads:
            for q in others:
                q.requires_grad = p.requires_grad

    def blas_limit(self):
        return blas_threads(self.threads_per_worker)

    def _shard(self, i, x, y, total):
        rep, crit = self.replicas[i], self.crits[i]
        if i:
            for p in rep.parameters():
                if p.requires_grad:
                    p.grad[...] = 0
        with thread_rng(self.rngs[i]):
            out = rep(x)
            loss = crit(out, y)
            if math.isfinite(loss):
                g = crit.backward()
                rep.backward(g if self.summed else g * g.dtype.type(len(x) / total))
        return out, loss

    def forward_backward(self, xb, yb):
        """``(out, loss)``: the outputs in batch order and the batch's loss (the shards' mean,
        weighted by their sizes; their sum for ``reduction="sum"``). A non-finite shard loss
        skips that shard's backward: the caller stops on the loss."""
        n = len(xb)
        k = max(1, min(self.workers, n // 2))
        cuts = [n * i // k for i in range(k + 1)]
        jobs = [self.pool.submit(self._shard, i, xb[cuts[i]:cuts[i + 1]], yb[cuts[i]:cuts[i + 1]], n)
                for i in range(1, k)]
        try:
            results = [self._shard(0, xb[:cuts[1]], yb[:cuts[1]], n)]
        finally:
            wait(jobs)                          # every worker finishes, even when shard 0 raised
        results += [job.result() for job in jobs]            # a worker's error is raised here
        weights = [1.0] * k if self.summed else [(cuts[i + 1] - cuts[i]) / n for i in range(k)]
        loss = float(sum(w * float(r[1]) for w, r in zip(weights, results)))
        for p, others in self.grads:
            if p.requires_grad:
                for q in others[:k - 1]:
                    p.grad += q.grad
        self._sync_buffers(k)
        out = results[0][0] if k == 1 else np.concatenate([r[0] for r in results])
        return out, loss

    def _sync_buffers(self, k):
        """Every replica's floating buffers (BatchNorm's running estimates) := their mean over
        the ``k`` replicas that ran; counters are the same in each."""
        if k == 1:
            for mods in self.with_buffers:            # the others did not step: give them the model's
                for name, b in mods[0]._buffers.items():
                    for m in mods[1:]:
                        m._buffers[name] = b.copy()
            return
        for mods in self.with_buffers:
            for name, b in mods[0]._buffers.items():
                if b.dtype.kind == "f":
                    mean = sum(m._buffers[name] for m in mods[1:k]) + b
                    mean = (mean / k).astype(b.dtype, copy=False)
                else:
                    mean = b
                for m in mods:
                    m._buffers[name] = mean.copy() if m is not mods[0] else mean

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
