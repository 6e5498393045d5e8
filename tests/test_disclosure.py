"""Disclosure control: no small count is shown, and none can be worked back from the totals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insightlib.report import disclosure, disclosure_solver
from insightlib.report.disclosure import cut_curve, safe_rate, suppress_table
from insightlib.errors import InputError


# --- an attacker, written independently of the module: reads only the published table ---

def attack(display: pd.DataFrame, true: pd.DataFrame, count_columns: list[str], total_column: str | None,
           total_row_pos: int | None) -> list[tuple[int, str]]:
    """Cells shown as "c" that the margin equations determine uniquely.

    Unknowns are the "c" cells; each row (with a total column) and each column (with a total
    row) gives one equation. A cell is determined iff adding its unit vector to the
    constraint matrix does not raise the rank (it is already in the row space).
    """
    unknown = [(r, c) for r in range(len(display)) for c in count_columns if display.iloc[r][c] == "c"]
    if not unknown:
        return []
    idx = {cell: k for k, cell in enumerate(unknown)}
    interior_cols = [c for c in count_columns if c != total_column]
    interior_rows = [r for r in range(len(display)) if r != total_row_pos]
    rows, rhs = [], []

    def add(cells_with_coef):
        a = np.zeros(len(unknown))
        b = 0.0
        for (cell, coef) in cells_with_coef:
            if cell in idx:
                a[idx[cell]] += coef
            else:
                b -= coef * float(display.iloc[cell[0]][cell[1]])
        rows.append(a)
        rhs.append(b)

    if total_column is not None:
        for r in range(len(display)):
            add([((r, c), 1.0) for c in interior_cols] + [((r, total_column), -1.0)])
    if total_row_pos is not None:
        for c in count_columns:
            add([((r, c), 1.0) for r in interior_rows] + [((total_row_pos, c), -1.0)])
    a = np.array(rows)
    b = np.array(rhs)
    # Sanity: the true values satisfy the attacker's equations (so the equations are right).
    x_true = np.array([float(true.iloc[r][c]) for r, c in unknown])
    assert np.allclose(a @ x_true, b)
    base = np.linalg.matrix_rank(a)
    exposed = []
    for cell, k in idx.items():
        e = np.zeros(len(unknown))
        e[k] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, e])) == base:
            exposed.append(cell)
    return exposed


def with_margins(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    out = df.copy()
    out["Total"] = out[cols].sum(axis=1)
    total = out[[*cols, "Total"]].sum()
    out = pd.concat([out, pd.DataFrame([{"group": "Total", **total.to_dict()}])], ignore_index=True)
    return out


count_tables = st.integers(min_value=2, max_value=5).flatmap(
    lambda n_rows: st.integers(min_value=2, max_value=4).flatmap(
        lambda n_cols: st.lists(
            st.lists(st.one_of(st.integers(0, 6), st.integers(0, 60)), min_size=n_cols, max_size=n_cols),
            min_size=n_rows,
            max_size=n_rows,
        )
    )
)


def frame(rows: list[list[int]]) -> tuple[pd.DataFrame, list[str]]:
    cols = [f"col{j}" for j in range(len(rows[0]))]
    df = pd.DataFrame(rows, columns=cols)
    df.insert(0, "group", [f"g{i}" for i in range(len(rows))])
    return df, cols


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count_tables, st.sampled_from([3, 5, 10]), st.sampled_from([None, 5]))
def test_no_suppressed_cell_can_be_worked_back_from_margins(rows, threshold, rounding):
    df, cols = frame(rows)
    res = suppress_table(df, cols, threshold=threshold, margins=True)
    true = with_margins(df, cols)
    all_cols = [*cols, "Total"]
    # The module's totals are the true totals.
    assert (res.display["Total"].where(res.display["Total"] != "c", true["Total"]).astype(int) == true["Total"]).all()
    exposed = attack(res.display, true, all_cols, "Total", len(true) - 1)
    assert exposed == [], f"recoverable cells {exposed} in\n{res.display}"
    # Every small count is hidden; nothing shown is a small count.
    for c in all_cols:
        for r in range(len(true)):
            shown, v = res.display.iloc[r][c], true.iloc[r][c]
            if 1 <= v < threshold:
                assert shown == "c"
            if shown != "c":
                assert shown == 0 or shown >= threshold
    # The record names exactly the suppressed cells.
    assert len(res.record) == int((res.display[all_cols] == "c").to_numpy().sum())
    if rounding:
        rounded = suppress_table(df, cols, threshold=threshold, margins=True, rounding=rounding).display
        assert ((rounded[all_cols] == "c") == (res.display[all_cols] == "c")).all().all()
        for c in all_cols:
            shown = [v for v in rounded[c] if v != "c"]
            assert all(v % rounding == 0 for v in shown)
            assert all(v == 0 or v >= threshold for v in shown)


@settings(max_examples=150, deadline=None)
@given(count_tables)
def test_existing_total_row_and_column_are_found_and_protected(rows):
    df, cols = frame(rows)
    table = with_margins(df, cols)  # a table that already carries "Total" row and column
    res = suppress_table(table, [*cols, "Total"])
    assert res.total_column == "Total" and res.total_row == len(table) - 1
    assert attack(res.display, table, [*cols, "Total"], "Total", len(table) - 1) == []


def test_worked_example_two_by_two_block():
    df = pd.DataFrame({"need": ["N1", "N2", "N3"], "M": [3, 20, 30], "F": [12, 2, 40]})
    res = suppress_table(df, ["M", "F"], margins=True)
    d = res.display.set_index("need")
    # 3 and 2 are primary; 12 (next smallest in row N1 and column F) and 20 complete the block.
    assert d.loc["N1", "M"] == "c" and d.loc["N2", "F"] == "c"
    assert d.loc["N1", "F"] == "c" and d.loc["N2", "M"] == "c"
    assert d.loc["N3", "M"] == 30 and d.loc["Total", "Total"] == 107
    assert res.n_primary == 2 and res.n_secondary == 2
    assert set(res.record["reason"]) == {"primary", "secondary"}


def test_zeros_are_shown_unless_asked_and_are_not_chosen_first():
    df = pd.DataFrame({"group": ["a", "b", "c"], "x": [0, 3, 40], "y": [6, 0, 50]})
    res = suppress_table(df, ["x", "y"], margins=True)
    d = res.display
    assert d.loc[0, "x"] == 0 and d.loc[1, "y"] == 0  # true zeros kept
    assert d.loc[1, "x"] == "c"
    # Column x's complement is 40, its smallest non-zero cell, not the zero above it.
    assert d.loc[2, "x"] == "c"
    res_z = suppress_table(df, ["x", "y"], margins=True, suppress_zeros=True)
    assert res_z.display.loc[0, "x"] == "c" and res_z.display.loc[1, "y"] == "c"


def test_simple_rule_alone_can_leave_a_cell_exposed_and_the_exact_check_fixes_it(monkeypatch):
    # Found by random search: after the row/column rule every row and column has 0 or at
    # least 2 suppressed cells, yet the margin equations still pin down cell (g2, col1).
    rows = [[40, 7, 20], [40, 2, 60], [0, 2, 1], [7, 1, 60]]
    df, cols = frame(rows)
    true = with_margins(df, cols)
    monkeypatch.setattr(disclosure_solver, "recoverable_cells", lambda eqs, sup, tol=1e-9: [])
    monkeypatch.setattr(disclosure_solver, "narrow_cells", lambda *a, **k: [])
    naive = suppress_table(df, cols, margins=True)
    monkeypatch.undo()
    exposed = attack(naive.display, true, [*cols, "Total"], "Total", len(true) - 1)
    assert exposed, "expected the row/column rule alone to leave a cell recoverable"
    safe = suppress_table(df, cols, margins=True)
    assert attack(safe.display, true, [*cols, "Total"], "Total", len(true) - 1) == []


def test_without_totals_only_primary_suppression():
    df = pd.DataFrame({"group": ["a", "b"], "n": [4, 100]})
    res = suppress_table(df, ["n"])
    assert list(res.display["n"]) == ["c", 100]
    assert res.n_secondary == 0


def test_single_column_with_total_row_hides_a_second_cell():
    df = pd.DataFrame({"group": ["a", "b", "c", "Total"], "n": [4, 10, 100, 114]})
    res = suppress_table(df, ["n"])
    assert list(res.display["n"]) == ["c", "c", 100, 114]


def test_rounding_to_base_five():
    df = pd.DataFrame({"group": ["a", "b"], "n": [12, 18]})
    assert list(suppress_table(df, ["n"], rounding=5).display["n"]) == [10, 20]


def test_bad_counts_are_input_errors():
    with pytest.raises(InputError, match="'n'"):
        suppress_table(pd.DataFrame({"n": [1, -2]}), ["n"])
    with pytest.raises(InputError, match="whole numbers"):
        suppress_table(pd.DataFrame({"n": [1.5]}), ["n"])
    with pytest.raises(InputError, match="no column"):
        suppress_table(pd.DataFrame({"n": [1]}), ["m"])


def test_cut_curve_per_group_and_in_time_order():
    curve = pd.DataFrame(
        {
            "group": ["a"] * 5 + ["b"] * 4,
            "days": [0, 30, 60, 90, 120, 60, 0, 30, 90],
            "at_risk": [40, 20, 12, 9, 11, 8, 30, 10, 5],
        }
    )
    out = cut_curve(curve, group_column="group", time_column="days")
    assert out.loc[out.group == "a", "days"].tolist() == [0, 30, 60]  # stops at 9, even though 11 follows
    assert out.loc[out.group == "b", "days"].tolist() == [0, 30]
    assert (out["at_risk"] >= 10).all()
    with pytest.raises(InputError, match="at_risk"):
        cut_curve(curve.drop(columns="at_risk"))


@pytest.mark.parametrize(
    "num, den, display, suppressed",
    [
        (3, 100, "c", True),  # small numerator
        (98, 100, "c", True),  # small complement
        (2, 3, "c", True),  # small denominator
        (0, 50, "0.0%", False),  # zero shown
        (25, 100, "25.0%", False),
        (0, 0, "z", False),  # not applicable
    ],
)
def test_safe_rate(num, den, display, suppressed):
    r = safe_rate(num, den, threshold=5)
    assert r.display == display and r.suppressed == suppressed
    if not suppressed and den:
        assert r.rate == pytest.approx(num / den)


def test_safe_rate_rejects_impossible_counts():
    with pytest.raises(InputError):
        safe_rate(5, 4)
    with pytest.raises(InputError):
        safe_rate(-1, 4)


def _brute_ranges(values: dict, hidden: set, equations: list[dict], lowest: int = 1, cap: int = 80) -> dict:
    """Every whole-number assignment of the hidden cells (up to ``cap``) that satisfies the equations:
    an independent check of ``hidden_ranges`` by enumeration."""
    import itertools

    names = sorted(hidden)
    ranges = {n: [] for n in names}
    for combo in itertools.product(range(lowest, cap + 1), repeat=len(names)):
        trial = {**values, **dict(zip(names, combo))}
        if all(sum(c * trial[k] for k, c in eq.items()) == 0 for eq in equations):
            for n, v in zip(names, combo):
                ranges[n].append(v)
    return {n: (min(v), max(v)) for n, v in ranges.items()}


def test_two_small_hidden_cells_beside_a_total_are_widened_until_no_value_is_pinned():
    # episodes = died + transferred + turned 18 + closed on extract date + followed up:
    # hiding died (1) and its smallest complement transferred (2) would leave "1 or 2".
    counts = {"episodes": 60, "died": 1, "transferred": 2, "adult": 0, "extract": 0, "followed": 57}
    df = pd.DataFrame({"count": list(counts.values())}, index=list(counts))
    ident = [{"episodes": 1, "died": -1, "transferred": -1, "adult": -1, "extract": -1, "followed": -1}]
    res = suppress_table(df, ["count"], identities=ident)
    hidden = set(res.display.index[res.display["count"].astype(str).eq("c")])
    assert {"died", "transferred"} <= hidden
    shown = {k: v for k, v in counts.items() if k not in hidden}
    eq = [{k: float(v) for k, v in ident[0].items()}]
    brute = _brute_ranges(shown, hidden, eq)
    for cell in ("died", "transferred"):
        lo, hi = brute[cell]
        assert hi - lo + 1 >= 5, (cell, brute)
    # the primary rule alone (no identities) hides only the two small counts
    plain = suppress_table(df, ["count"])
    assert set(plain.display.index[plain.display["count"].astype(str).eq("c")]) == {"died", "transferred"}


def test_cells_known_from_elsewhere_are_never_chosen_as_complements():
    counts = {"episodes": 60, "died": 1, "transferred": 0, "followed": 59}
    df = pd.DataFrame({"count": list(counts.values())}, index=list(counts))
    ident = [{"episodes": 1, "died": -1, "transferred": -1, "followed": -1}]
    res = suppress_table(df, ["count"], identities=ident, known={"followed": 59})
    d = res.display["count"]
    assert d["followed"] == 59 and d["died"] == "c" and d["episodes"] == "c"


def test_hidden_ranges_agree_with_enumeration():
    cells = {(0, "x"): 3, (1, "x"): 4, (2, "x"): 7}
    eqs = [{(0, "x"): 1.0, (1, "x"): 1.0, (2, "x"): -1.0}]
    r = disclosure_solver.hidden_ranges(eqs, [(0, "x"), (1, "x")], cells.get)
    assert r[(0, "x")] == (1.0, 6.0) and r[(1, "x")] == (1.0, 6.0)
    r = disclosure_solver.hidden_ranges(eqs, [(0, "x")], cells.get)
    assert r[(0, "x")] == (3.0, 3.0)


def test_a_rate_beside_rounded_counts_is_the_rate_of_the_rounded_counts():
    """Issue 9: an exact rate beside base-5 counts gives the exact count back (rate x referrals)."""
    from insightlib.report.disclosure import round_count, safe_rate

    exact = safe_rate(23, 107, 5)
    assert exact.display == "21.5%"  # 23/107: times 105 published referrals recovers 22.6 -> 23
    rounded = safe_rate(23, 107, 5, rounding=5)
    assert rounded.rate == pytest.approx(25 / 105) and rounded.display == "23.8%"
    assert safe_rate(3, 107, 5, rounding=5).suppressed  # suppression decided on the true counts
    assert (round_count(12.5, 5), round_count(12.4, 5), round_count(7, None)) == (15, 10, 7)
    # every rounded rate is a ratio of multiples of the base: no finer count can be read from it
    for num in range(5, 60):
        for den in range(num + 5, 120, 7):
            r = safe_rate(num, den, 5, rounding=5)
            assert r.rate == round_count(num, 5) / round_count(den, 5)


def test_a_count_bounded_by_its_neighbour_in_the_row_is_protected_too():
    """CI's adversary found this: followed up <= analysed in each row, so with 34 followed in all,
    30 analysed in one group and 6 in the other, the hidden 4 could only be 4, 5 or 6."""
    df = pd.DataFrame({"analysed": [6, 30, 36], "followed": [4, 30, 34], "rereferred": [0, 5, 5]},
                      index=["treated", "control", "Total"])
    pairs = [((r, "followed"), (r, "analysed")) for r in df.index] + [((r, "rereferred"), (r, "followed")) for r in df.index]
    without = suppress_table(df, list(df.columns), 5, total_row="Total")
    with_bounds = suppress_table(df, list(df.columns), 5, total_row="Total", at_most=pairs)
    cells = lambda res: [(r, c) for r in df.index for c in df.columns if res.table().loc[r, c] == "c"]  # noqa: E731
    hidden = cells(with_bounds)
    assert ("treated", "followed") in hidden
    from insightlib.report.disclosure_solver import hidden_ranges

    index = {r: k for k, r in enumerate(df.index)}
    value = lambda cell: float(df.iloc[cell[0]][cell[1]])  # noqa: E731
    as_cells = [(index[r], c) for r, c in hidden]
    eqs = [{(0, c): 1.0, (1, c): 1.0, (2, c): -1.0} for c in df.columns]
    bounds = [((index[a[0]], a[1]), (index[b[0]], b[1])) for a, b in pairs]
    lo, hi = hidden_ranges(eqs, as_cells, value, 1, [(0, "followed")], bounds)[(0, "followed")]
    assert hi - lo + 1 >= 5, (lo, hi, hidden)
    # the bound is what made the difference: without it the same cells looked safe
    if cells(without) == [("treated", "followed"), ("control", "followed")]:
        lo0, hi0 = hidden_ranges(eqs, [(0, "followed"), (1, "followed")], value, 1, [(0, "followed")], bounds)[(0, "followed")]
        assert hi0 - lo0 + 1 < 5
