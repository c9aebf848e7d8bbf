"""How many threads the BLAS library (matrix products) may use."""
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_controller = None
_limiter = None


def _control():
    """The process's threadpoolctl controller (made on first use: it inspects the loaded libraries)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def set_num_threads(n):
    """Limit BLAS to ``n`` threads for the rest of the process (``None`` lifts the limit).

    One thread is the default of the command line: on a busy 2-core machine OpenBLAS
    with two threads was seen to stall (see docs/performance.md)."""
    global _limiter
    if _limiter is not None:
        _limiter.restore_original_limits()
        _limiter = None
    if n is not None:
        _limiter = _control().limit(limits=int(n), user_api="blas")


def get_num_threads():
    infos = [lib for lib in _control().info() if lib.get("user_api") == "blas"]
    return max((lib["num_threads"] for lib in infos), default=1)


@contextmanager
def blas_threads(n):
    """Within this block BLAS uses at most ``n`` threads; the previous limit comes back after."""
    limiter = _control().limit(limits=int(n), user_api="blas")
    try:
        yield
    finally:
        limiter.restore_original_limits()
