"""stats.threads.one_thread: BLAS on one thread in the block and in each call of a decorated function, and the
limits as they were afterwards."""

from __future__ import annotations

import numpy as np  # noqa: F401 - loads the BLAS threadpoolctl sees
from threadpoolctl import threadpool_info

from insightlib.stats.threads import one_thread


def _threads(api: str | None = "blas") -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if api is None or p["user_api"] == api]


def test_one_blas_thread_in_the_block_and_each_decorated_call_then_as_before():
    before = _threads()
    assert before, "numpy's BLAS is not visible to threadpoolctl"
    with one_thread():
        assert set(_threads()) == {1}

    @one_thread()
    def inner():
        return _threads()

    assert set(inner()) == {1} and set(inner()) == {1}  # a decorator that works on every call
    assert _threads() == before


def test_every_pool_on_one_thread_when_asked():
    with one_thread(user_api=None):
        assert set(_threads(None)) == {1}
