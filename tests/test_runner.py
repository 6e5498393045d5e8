"""The runner's small pieces that need no notebook run."""

from __future__ import annotations

import os

from insightlib.batch import kernels


def test_parallel_kernels_share_the_cores_and_a_users_setting_is_kept(monkeypatch):
    for variable in kernels.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    with kernels._kernel_threads(1):
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
        assert os.environ["MKL_NUM_THREADS"] == "3"
    assert "OMP_NUM_THREADS" not in os.environ and "OPENBLAS_NUM_THREADS" not in os.environ
    assert os.environ["MKL_NUM_THREADS"] == "3"
    with kernels._kernel_threads(None):
        assert "OMP_NUM_THREADS" not in os.environ
