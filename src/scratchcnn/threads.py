"""How many threads the BLAS library (matrix products) may use."""
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_controller = None
_limiter = None


def set_num_threads(n):
    """Limit BLAS to ``n`` threads for the rest of the process (``None`` lifts the limit).

    One thread is the default of the command line: on a busy 2-core machine OpenBLAS
    with two threads was seen to stall (see docs/performance.md)."""
    global _controller, _limiter
    if _controller is None:
        _controller = ThreadpoolController()
    if _limiter is not None:
        _limiter.restore_original_limits()
        _limiter = None
    if n is not None:
        _limiter = _controller.limit(limits=int(n), user_api="blas")


def get_num_threads():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    infos = [lib for lib in _controller.info() if lib.get("user_api") == "blas"]
    return max((lib["num_threads"] for lib in infos), default=1)


@contextmanager
def blas_threads(n):
    """Within this block BLAS uses at most ``n`` threads; the previous limit comes back after."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    limiter = _controller.limit(limits=int(n), user_api="blas")
    try:
        yield
    finally:
        limiter.restore_original_limits()
