"""Disclosure control's exact checks: the identities a reader knows between a table's cells, which hidden
cells those pin down exactly (null space), and the range of whole values a reader could still give each
hidden cell (an integer program per bound). ``report.disclosure.suppress_table`` hides more cells until
none is recoverable and each small one keeps at least ``threshold`` possible values."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from scipy.linalg import null_space

Cell = tuple[int, str]  # (row position, column name)


def margin_equations(
    values: pd.DataFrame,
    interior_rows: list[int],
    interior_cols: list[str],
    total_row: int | None,
    total_column: str | None,
) -> list[dict[Cell, float]]:
    """Linear equations a reader knows hold between the cells: each row and column adds up to its total.

    Missing (NaN) cells and any gap between a total and the sum of its parts are treated as
    known to the reader, which only ever makes the check stricter.
    """
    eqs: list[dict[Cell, float]] = []
    n_rows = len(values)
    arr = values.to_numpy(dtype=float)
    pos = {c: j for j, c in enumerate(values.columns)}
    if total_column is not None:
        for r in range(n_rows):
            eq = {(r, c): 1.0 for c in interior_cols if not np.isnan(arr[r, pos[c]])}
            eq[(r, total_column)] = -1.0
            eqs.append(eq)
    if total_row is not None:
        cols = [*interior_cols, *([total_column] if total_column is not None else [])]
        for c in cols:
            j = pos[c]
            eq = {(r, c): 1.0 for r in interior_rows if not np.isnan(arr[r, j])}
            eq[(total_row, c)] = -1.0
            eqs.append(eq)
    return eqs


def recoverable_cells(equations: list[dict[Cell, float]], suppressed: Iterable[Cell], tol: float = 1e-9) -> list[Cell]:
    """Suppressed cells a reader could solve for exactly from the published totals.

    The published cells are constants; the equations restricted to the suppressed cells
    ``A_S x_S = b`` have solutions ``x_S + N z`` for the null space ``N`` of ``A_S``, so a
    cell is pinned down exactly when its row of ``N`` is zero.
    """
    cells = sorted(set(suppressed))
    if not cells or not equations:
        return []
    index = {cell: k for k, cell in enumerate(cells)}
    a = np.zeros((len(equations), len(cells)))
    for i, eq in enumerate(equations):
        for cell, coef in eq.items():
            if cell in index:
                a[i, index[cell]] = coef
    if not a.any():
        return []
    ns = null_space(a)
    if ns.shape[1] == 0:
        return cells
    return [cell for cell in cells if np.abs(ns[index[cell]]).max() < tol]


def _hidden_constraints(equations, index: dict, value, at_most) -> list:
    """The equations restricted to the hidden cells (published cells are constants, so what the hidden ones
    add up to is known, gaps included) and the at-most pairs, as scipy LinearConstraints."""
    from scipy.optimize import LinearConstraint

    n = len(index)
    rows, rhs = [], []
    for eq in equations:
        if not any(c in index for c in eq):
            continue
        row = np.zeros(n)
        for c, coef in eq.items():
            if c in index:
                row[index[c]] += coef
        rows.append(row)
        rhs.append(sum(coef * value(c) for c, coef in eq.items() if c in index))
    cons = [LinearConstraint(np.array(rows), np.array(rhs), np.array(rhs))] if rows else []
    less, limit = [], []
    for a, b in at_most:
        if a not in index and b not in index:
            continue
        row, const = np.zeros(n), 0.0
        if a in index:
            row[index[a]] += 1.0
        else:
            const -= value(a)
        if b in index:
            row[index[b]] -= 1.0
        else:
            const += value(b)
        less.append(row)
        limit.append(const)
    if less:
        cons.append(LinearConstraint(np.array(less), -np.inf, np.array(limit)))
    return cons


def hidden_ranges(
    equations: list[dict[Cell, float]],
    hidden: Iterable[Cell],
    value,
    lowest: int = 1,
    cells: Iterable[Cell] | None = None,
    at_most: Iterable[tuple[Cell, Cell]] = (),
) -> dict[Cell, tuple[float, float]]:
    """The smallest and largest whole value a reader could give each hidden cell.

    The reader knows every published cell, every equation, that a hidden cell is at least
    ``lowest`` (1 when zeros are shown) and that counts are whole numbers; an integer
    program per bound (tables are small). ``value(cell)`` gives the true values, used only
    for the published constants. An unbounded side is ``inf``. ``at_most`` pairs ``(a, b)``
    are what a reader knows without a total: ``a`` is no more than ``b`` (followed up is at
    most analysed).
    """
    from scipy.optimize import Bounds, milp

    hidden = sorted(set(hidden))
    index = {c: k for k, c in enumerate(hidden)}
    cons = _hidden_constraints(equations, index, value, at_most)
    # a zero hidden as a complement: a reader who assumed "c is at least 1" would find no solution and
    # drop the assumption for it, so it is bounded by 0
    bounds = Bounds(np.array([float(min(lowest, value(c))) for c in hidden]), np.full(len(hidden), np.inf))
    out = {}
    for cell in hidden if cells is None else cells:
        c = np.zeros(len(hidden))
        c[index[cell]] = 1.0
        lo_hi = []
        for sign in (1.0, -1.0):
            res = milp(sign * c, constraints=cons, integrality=np.ones(len(hidden)), bounds=bounds)
            if res.status == 3:  # unbounded
                lo_hi.append(-np.inf if sign > 0 else np.inf)
            elif res.x is None:  # not solved: say the cell is pinned, so that more is hidden (never less)
                lo_hi.append(value(cell))
            else:
                lo_hi.append(float(round(res.x[index[cell]])))
        out[cell] = (lo_hi[0], lo_hi[1])
    return out


def narrow_cells(equations, hidden, value, threshold: int, lowest: int = 1, cells=None, at_most=()) -> list[Cell]:
    """Hidden cells (of ``cells``) a reader could narrow to fewer than ``threshold`` whole values."""
    hidden = list(hidden)
    if not hidden or not equations:
        return []
    cells = [c for c in (hidden if cells is None else cells) if any(c in eq for eq in equations)]
    if not cells:
        return []
    ranges = hidden_ranges(equations, hidden, value, lowest, cells, at_most)
    return [c for c in cells if ranges[c][1] - ranges[c][0] + 1 < threshold]
