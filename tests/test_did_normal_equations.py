"""The randomisation inference's fits by normal equations built from counts give lstsq's answer on the indicator matrix."""

from __future__ import annotations

import numpy as np
import pytest

from insightlib.stats import did_randomisation


def _indicators(ui: np.ndarray, ti: np.ndarray, nu: int, nt: int) -> np.ndarray:
    """Council indicators and period indicators (the first left out), as the fits used to be built."""
    D = np.zeros((len(ui), nu + nt - 1))
    D[np.arange(len(ui)), ui] = 1.0
    later = np.flatnonzero(ti > 0)
    D[later, nu + ti[later] - 1] = 1.0
    return D


@pytest.mark.parametrize("extra", [0, 3])
def test_normal_equations_equal_lstsq_of_the_indicators(extra):
    rng = np.random.default_rng(extra)
    nu, nt = 25, 30
    ui, ti = np.repeat(np.arange(nu), nt), np.tile(np.arange(nt), nu)
    keep = rng.random(len(ui)) > 0.2  # an unbalanced panel
    ui, ti = ui[keep], ti[keep]
    E = (rng.random((len(ui), extra)) > 0.8).astype(float)
    Y = rng.normal(size=(len(ui), 4)) + ui[:, None] * 0.3 - ti[:, None] * 0.1
    cE, cu, ct = did_randomisation._fe_least_squares(E, ui, ti, nu, nt, Y)
    X = np.column_stack([E, _indicators(ui, ti, nu, nt)])
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]
    np.testing.assert_allclose(cE, coef[:extra], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(cu, coef[extra : extra + nu], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ct[1:], coef[extra + nu :], rtol=1e-9, atol=1e-10)
    assert np.all(ct[0] == 0)
    np.testing.assert_allclose(E @ cE + cu[ui] + ct[ti], X @ coef, rtol=1e-9, atol=1e-10)


def test_a_singular_system_gives_the_minimum_norm_fit():
    """A lead indicator that repeats a council's indicator: lstsq's minimum-norm answer, fitted values the same."""
    nu, nt = 4, 5
    ui, ti = np.repeat(np.arange(nu), nt), np.tile(np.arange(nt), nu)
    E = (ui == 2).astype(float)[:, None]
    Y = np.arange(len(ui), dtype=float)[:, None] ** 1.5
    cE, cu, ct = did_randomisation._fe_least_squares(E, ui, ti, nu, nt, Y)
    X = np.column_stack([E, _indicators(ui, ti, nu, nt)])
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]
    np.testing.assert_allclose(E @ cE + cu[ui] + ct[ti], X @ coef, rtol=1e-9, atol=1e-9)
