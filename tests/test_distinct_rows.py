"""stats.effects.distinct_rows is np.unique(X, axis=0, return_inverse=True) by a cheaper route: the same rows in the
same order and the same inverse (the bootstrap's grouped refit depends on both)."""

import numpy as np
import pytest

from insightlib.stats.effects import distinct_rows


@pytest.mark.parametrize("case", ["dummies", "numeric", "missing", "wide"])
def test_distinct_rows_equal_numpys_unique(case):
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(3000), rng.integers(0, 2, (3000, 8)), rng.integers(0, 4, (3000, 2)) * 0.3 - 0.5])
    if case == "numeric":
        X = np.column_stack([X, rng.normal(size=3000).round(1)])
    if case == "missing":
        X[7, 2] = np.nan  # np.unique's own route
    if case == "wide":
        X = rng.integers(0, 3, (3000, 70)).astype(float)  # a key past 63 bits: np.unique's own route
    want, want_inv = np.unique(X, axis=0, return_inverse=True)
    got, got_inv = distinct_rows(X)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_inv, np.asarray(want_inv).ravel())
    np.testing.assert_array_equal(got[got_inv], X)
