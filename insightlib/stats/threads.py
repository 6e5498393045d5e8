"""One thread for a council's small linear algebra.

A council's matrices are small (episodes x a few dozen columns), and the suite runs two notebooks at once on
two cores: a threaded BLAS there starts a thread per core in each and spends its time waiting for cores (the
intervention bootstrap ran 20 times slower with OpenBLAS's default threads; a practice Cox model of 16,000
episodes took 2.8 s with a thread per core on a busy machine, 0.16 s on one).
"""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def one_thread(user_api: str | None = "blas"):
    """BLAS on one thread for the block or the decorated function (``@one_thread()``); ``user_api=None`` limits
    every thread pool threadpoolctl knows (OpenMP too, for models that thread with it)."""
    with threadpool_limits(limits=1, user_api=user_api):
        yield
