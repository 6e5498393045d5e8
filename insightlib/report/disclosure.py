"""Disclosure control: nothing that reaches a report can identify a child.

Policy (the Department for Education's, followed by ONS for small counts):

* **Primary suppression**: a count from 1 to ``threshold - 1`` (1 to 4 by default) is
  replaced by ``"c"``, DfE's symbol for "confidential". **True zeros are shown**: DfE and
  ONS leave zeros in place, because "nobody" identifies nobody, and hiding zeros would
  force far more secondary suppression. Pass ``suppress_zeros=True`` where a zero would
  itself be telling (for example "no child of this ethnicity was re-referred" in a council
  where the group's size is public).
* **Secondary suppression**: where a table has totals (a row or column labelled "Total"
  or "All", or ``margins=True``), a lone suppressed value could be worked back by
  subtraction. So every row and column with exactly one suppressed cell gets a second,
  the next smallest (non-zero values first, totals last), repeated to a fixed point.
  That rule is necessary but not sufficient (a suppressed cell joining two otherwise
  protected blocks can still be solved for), so the table is then checked by linear
  algebra: a suppressed cell can be worked back exactly when it is determined uniquely by
  the margin equations, that is when every vector in the null space of the equations
  restricted to the suppressed cells is zero in that cell. Any such cell gets a further
  complementary suppression, and the whole process repeats until none is left.
* **Protection interval**: not being solvable exactly is not enough either (two hidden cells
  of 1 and 2 beside a published total leave only 1 or 2 possible). So for every cell
  hidden for being small, an integer program (``scipy.optimize.milp``) finds the smallest
  and largest value a reader could give it, knowing every published cell, every identity
  and that a ``c`` is at least 1 (zeros are shown); while fewer than ``threshold`` whole
  numbers remain possible, one more cell is hidden (the one that widens it, smallest first).
* **Other identities**: a table whose rows add up in other ways than a total row (the
  re-referral report's "what happened" counts: episodes = died + transferred + turned 18 +
  closed on the extract date + followed up) passes them as ``identities``, and they are
  protected the same way.
* **Rounding** (optional, ``rounding=5``): the displayed counts are rounded to the nearest
  multiple of the base after suppression was decided on the true values; totals are
  rounded independently, so rounded tables need not add up (ONS practice).
* Survival curves are cut where fewer than 10 children remain at risk (``cut_curve``), and
  single figures go through ``safe_rate``.

Rates or percentages derived from suppressed counts must be computed from the *display*
table (or with ``safe_rate``), never from the true counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy.linalg import null_space

from insightlib.errors import InputError
from insightlib.contract import DISCLOSURE_THRESHOLD, MIN_AT_RISK

#: DfE's symbol for a value suppressed to protect confidentiality.
SUPPRESSED = "c"
#: DfE's symbol for "not applicable" (a rate with no denominator).
NOT_APPLICABLE = "z"
#: Labels that mark a row or column as a total of the others.
TOTAL_LABELS = {"total", "all", "all children", "grand total"}

Cell = tuple[int, str]  # (row position, column name)


@dataclass
class SuppressionResult:
    """A table safe to publish, plus a record of what was hidden and why (never the values)."""

    display: pd.DataFrame
    mask: pd.DataFrame
    record: pd.DataFrame
    threshold: int
    rounding: int | None
    total_row: Any = None
    total_column: str | None = None
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return self.display

    @property
    def n_primary(self) -> int:
        return int((self.record["reason"] == "primary").sum())

    @property
    def n_secondary(self) -> int:
        return int((self.record["reason"] == "secondary").sum())

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "rounding": self.rounding,
            "primary": self.n_primary,
            "secondary": self.n_secondary,
            "suppressed": [
                {"row": str(r.row), "column": str(r.column), "reason": r.reason} for r in self.record.itertuples()
            ],
        }

    def footnote(self) -> str:
        """Plain-English note to print under the table."""
        parts = [
            f'"{SUPPRESSED}": fewer than {self.threshold} children, or hidden so that such a number cannot be worked out from the totals.'
        ]
        if self.rounding:
            parts.append(
                f"Counts are rounded to the nearest {self.rounding}; totals are rounded separately, so they may not add up."
            )
        return " ".join(parts)


def _is_total_label(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in TOTAL_LABELS


def _check_counts(df: pd.DataFrame, count_columns: list[str]) -> pd.DataFrame:
    missing = [c for c in count_columns if c not in df.columns]
    if missing:
        raise InputError(f"Disclosure control: the table has no column(s) {missing}; it has {list(df.columns)}.")
    out = {}
    for col in count_columns:
        raw = df[col]
        num = raw if pd.api.types.is_numeric_dtype(raw) else pd.to_numeric(raw, errors="coerce")
        v = num.to_numpy(dtype=float)
        bad_type = np.isnan(v) & raw.notna().to_numpy()
        if bad_type.any():
            row = df.index[bad_type.argmax()]
            raise InputError(
                f"Disclosure control: column '{col}', row {row!r} is not a number ({raw[row]!r}); "
                "counts must be whole numbers."
            )
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(v) & ((v < 0) | (v != np.round(v)))
        if bad.any():
            row = df.index[bad.argmax()]
            raise InputError(
                f"Disclosure control: column '{col}', row {row!r} holds {v[bad.argmax()]!r}; "
                "counts must be whole numbers of 0 or more."
            )
        out[col] = v
    return pd.DataFrame(out, index=df.index)


def _find_total_row(df: pd.DataFrame, count_columns: list[str]) -> int | None:
    label_columns = [c for c in df.columns if c not in count_columns]
    labels = [df[c].tolist() for c in label_columns]
    for pos, label in enumerate(df.index):
        if _is_total_label(label) or any(_is_total_label(col[pos]) for col in labels):
            return pos
    return None


def _add_margins(
    df: pd.DataFrame, count_columns: list[str], values: pd.DataFrame
) -> tuple[pd.DataFrame, list[str], str | None]:
    out = df.copy()
    total_column = None
    if len(count_columns) > 1:
        total_column = "Total"
        out[total_column] = values[count_columns].sum(axis=1, min_count=1)
        count_columns = [*count_columns, total_column]
    totals = {c: out[c].apply(pd.to_numeric, errors="coerce").sum() for c in count_columns}
    label_columns = [c for c in out.columns if c not in count_columns]
    row = {c: "" for c in label_columns}
    if label_columns:
        row[label_columns[0]] = "Total"
    row.update(totals)
    if isinstance(out.index, pd.RangeIndex):
        out = pd.concat([out, pd.DataFrame([row])], ignore_index=True)
    else:
        out = pd.concat([out, pd.DataFrame([row], index=["Total"])])
    return out, count_columns, total_column


def _equations(
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
    # Long (~60 lines) on purpose: one linear program per hidden cell and side, built from the equations, the
    # published constants and the at-most pairs together.
    from scipy.optimize import Bounds, LinearConstraint, milp

    hidden = sorted(set(hidden))
    index = {c: k for k, c in enumerate(hidden)}
    rows, rhs = [], []
    for eq in equations:
        if not any(c in index for c in eq):
            continue
        row = np.zeros(len(hidden))
        for c, coef in eq.items():
            if c in index:
                row[index[c]] += coef
        rows.append(row)
        # the published cells are constants; what the hidden ones add up to is known (gaps included)
        rhs.append(sum(coef * value(c) for c, coef in eq.items() if c in index))
    cons = [LinearConstraint(np.array(rows), np.array(rhs), np.array(rhs))] if rows else []
    less, limit = [], []
    for a, b in at_most:
        if a not in index and b not in index:
            continue
        row, const = np.zeros(len(hidden)), 0.0
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


def suppress_table(
    df: pd.DataFrame,
    count_columns: Iterable[str],
    threshold: int = DISCLOSURE_THRESHOLD,
    rounding: int | None = None,
    *,
    margins: bool = False,
    total_row: Any = None,
    total_column: str | None = None,
    suppress_zeros: bool = False,
    symbol: str = SUPPRESSED,
    identities: Iterable[dict[Any, float]] = (),
    known: dict[Any, float] | None = None,
    at_most: Iterable[tuple[Any, Any]] = (),
) -> SuppressionResult:
    """Suppress small counts (and what would reveal them) in a table of counts.

    ``count_columns`` are the columns holding counts of children (or referrals...). A total
    row or column is found by its label ("Total", "All"), or named with ``total_row`` (an
    index label) / ``total_column``; ``margins=True`` adds both. Without totals only primary
    suppression applies. Returns the display table (suppressed cells shown as ``"c"``) and
    the record of suppressed cells.

    ``identities`` are further equations a reader knows, each ``{row label: coefficient}``
    (one count column) or ``{(row label, column): coefficient}``, summing to zero.
    ``known`` names cells published elsewhere (``{row label or (row, column): value}``):
    they are never hidden here, because the reader would read them on the other page.
    ``at_most`` pairs of ``(row, column)`` cells ``(a, b)`` say ``a`` can be no more than ``b``
    (followed up at most analysed): a reader bounds a hidden cell by them too.
    """
    # Long (~180 lines) on purpose: one fixed-point loop: primary cells, the row and column rule, the exact
    # check and the protection interval each add complementary cells the others must see in the same pass; its
    # parts (_equations, recoverable_cells, hidden_ranges, narrow_cells) are functions already.
    count_columns = list(count_columns)
    if not count_columns:
        raise InputError("Disclosure control needs at least one count column.")
    if threshold < 1:
        raise InputError(f"Disclosure threshold must be 1 or more, not {threshold}.")
    if rounding is not None and rounding < 1:
        raise InputError(f"Rounding base must be a whole number of 1 or more, not {rounding}.")
    values = _check_counts(df, count_columns)
    table = df.copy()
    notes: list[str] = []

    if margins:
        if total_row is not None or total_column is not None or _find_total_row(df, count_columns) is not None:
            raise InputError(
                "Disclosure control: margins=True was asked for, but the table already has a total row or column."
            )
        table, count_columns, total_column = _add_margins(table, count_columns, values)
        values = _check_counts(table, count_columns)
        total_row_pos: int | None = len(table) - 1
    else:
        if total_row is not None:
            if total_row not in table.index:
                raise InputError(f"Disclosure control: no row labelled {total_row!r} to use as the total row.")
            total_row_pos = int(table.index.get_loc(total_row))
        else:
            total_row_pos = _find_total_row(table, count_columns)
        if total_column is None:
            found = [c for c in count_columns if _is_total_label(c)]
            total_column = found[0] if found else None
        elif total_column not in count_columns:
            raise InputError(f"Disclosure control: the total column {total_column!r} must be one of the count columns.")

    interior_cols = [c for c in count_columns if c != total_column]
    interior_rows = [r for r in range(len(table)) if r != total_row_pos]
    eqs = _equations(values, interior_rows, interior_cols, total_row_pos, total_column)

    def _cell(key) -> Cell:
        row, col = key if isinstance(key, tuple) else (key, None)
        if col is None:
            if len(count_columns) != 1:
                raise InputError(
                    "Disclosure control: an identity over a table of several count columns must name "
                    "(row, column) cells."
                )
            col = count_columns[0]
        if row not in table.index or col not in count_columns:
            raise InputError(
                f"Disclosure control: an identity names a cell ({row!r}, {col!r}) the table does not have."
            )
        return int(table.index.get_loc(row)), col

    for ident in identities:
        eqs.append({_cell(k): float(v) for k, v in ident.items()})
    pinned = {_cell(k) for k in (known or {})}
    bounds = [(_cell(a), _cell(b)) for a, b in at_most]
    arr = values.to_numpy(dtype=float)
    col_pos = {c: j for j, c in enumerate(values.columns)}

    def value(cell: Cell) -> float:
        return arr[cell[0], col_pos[cell[1]]]

    for eq in eqs:
        gap = sum(coef * value(cell) for cell, coef in eq.items())
        if abs(gap) > 1e-9:
            notes.append("A total does not equal the sum of its parts; the difference is treated as known to readers.")
            break

    all_cells = [(r, c) for r in range(len(table)) for c in count_columns if not np.isnan(value((r, c)))]
    published = set(all_cells)
    reason: dict[Cell, str] = {}
    for cell in all_cells:
        v = value(cell)
        if 1 <= v < threshold or (suppress_zeros and v == 0):
            reason[cell] = "primary"

    def is_margin(cell: Cell) -> bool:
        return cell[0] == total_row_pos or cell[1] == total_column

    def order(cell: Cell) -> tuple:
        v = value(cell)
        return (is_margin(cell), v == 0, v, cell[0], count_columns.index(cell[1]))

    def candidates(eq: dict[Cell, float]) -> list[Cell]:
        return sorted(
            (cell for cell in eq if cell not in reason and cell in published and cell not in pinned), key=order
        )

    lowest = 0 if suppress_zeros else 1

    while True:
        # The row/column rule, to a fixed point.
        changed = True
        while changed:
            changed = False
            for eq in eqs:
                if sum(cell in reason for cell in eq) == 1:
                    cand = candidates(eq)
                    if cand:
                        reason[cand[0]] = "secondary"
                        changed = True
        # The exact check, then the protection interval; add one complementary suppression and go round again.
        exposed = recoverable_cells(eqs, reason)
        narrow: list[Cell] = []
        if not exposed:
            narrow = narrow_cells(
                eqs, reason, value, threshold, lowest, [c for c, why in reason.items() if why == "primary"], bounds
            )
            if not narrow:
                break
        target = (exposed or narrow)[0]
        options = sorted({cell for eq in eqs if target in eq for cell in candidates(eq)}, key=order)
        if not options:
            # Every cell sharing an equation with it is already hidden: widen to any published cell.
            options = sorted((cell for cell in all_cells if cell not in reason and cell not in pinned), key=order)
        if not options:
            notes.append("Some suppressed cells could not be protected further: every cell is already hidden.")
            break
        if exposed:
            chosen = next((o for o in options if target not in recoverable_cells(eqs, [*reason, o])), options[0])
        else:
            chosen = next(
                (
                    o
                    for o in options
                    if target not in narrow_cells(eqs, [*reason, o], value, threshold, lowest, [target], bounds)
                ),
                options[-1],
            )
        reason[chosen] = "secondary"

    display = table.copy()
    mask = pd.DataFrame(False, index=table.index, columns=table.columns)
    for col in count_columns:
        j = table.columns.get_loc(col)
        shown: list[Any] = []
        for r in range(len(table)):
            v = value((r, col))
            if (r, col) in reason:
                shown.append(symbol)
                mask.iat[r, j] = True
            elif np.isnan(v):
                shown.append(table.iat[r, j])
            elif rounding:
                shown.append(round_count(v, rounding))
            else:
                shown.append(int(v))
        display[col] = pd.Series(shown, index=table.index, dtype=object)

    record = pd.DataFrame(
        [
            {"row": table.index[r], "column": c, "reason": why}
            for (r, c), why in sorted(reason.items(), key=lambda kv: (kv[0][0], count_columns.index(kv[0][1])))
        ],
        columns=["row", "column", "reason"],
    )
    return SuppressionResult(
        display=display,
        mask=mask,
        record=record,
        threshold=threshold,
        rounding=rounding,
        total_row=None if total_row_pos is None else table.index[total_row_pos],
        total_column=total_column,
        notes=notes,
    )


def cut_curve(
    curve_df: pd.DataFrame,
    at_risk_column: str = "at_risk",
    min_at_risk: int = MIN_AT_RISK,
    *,
    group_column: str | None = None,
    time_column: str | None = None,
) -> pd.DataFrame:
    """Cut a survival curve (or cumulative incidence) where fewer than ``min_at_risk`` remain at risk.

    Past that point each step is one or two children, whose dates could be recognised. The
    curve is kept up to, not including, the first time the number at risk falls below the
    minimum (per group when ``group_column`` is given; in time order when ``time_column`` is).
    """
    if at_risk_column not in curve_df.columns:
        raise InputError(
            f"Disclosure control: the curve has no '{at_risk_column}' column; it has {list(curve_df.columns)}."
        )
    at_risk = pd.to_numeric(curve_df[at_risk_column], errors="coerce")
    if at_risk.isna().any():
        raise InputError(
            f"Disclosure control: the curve's '{at_risk_column}' column has missing or non-numeric values."
        )
    df = curve_df
    if time_column is not None:
        df = df.sort_values([*([group_column] if group_column else []), time_column], kind="stable")
    below = pd.to_numeric(df[at_risk_column]) < min_at_risk
    if group_column is None:
        keep = ~below.cummax()
    else:
        keep = ~below.astype(int).groupby(df[group_column], sort=False).cummax().astype(bool)
    return df.loc[keep].copy()


@dataclass(frozen=True)
class SafeRate:
    """One published figure: the rate, or the reason it is hidden."""

    rate: float | None
    display: str
    suppressed: bool
    reason: str

    def to_dict(self) -> dict:
        return {"rate": self.rate, "display": self.display, "suppressed": self.suppressed, "reason": self.reason}


def round_count(value: float, rounding: int | None) -> int:
    """A count as published with ``rounding`` (nearest multiple of the base, halves up), or exact."""
    if not rounding:
        return int(value)
    return int(np.floor(value / rounding + 0.5) * rounding)


def safe_rate(
    numerator: float,
    denominator: float,
    threshold: int = DISCLOSURE_THRESHOLD,
    *,
    decimals: int = 1,
    rounding: int | None = None,
) -> SafeRate:
    """A rate (shown as a percentage) that is published only if no small count lies behind it.

    Hidden when the numerator, the denominator or their difference is from 1 to
    ``threshold - 1`` (98% of 100 tells the reader that 2 children were not re-referred);
    a rate with no denominator is "z" (not applicable). A numerator of 0 is shown, as with
    zeros in tables. With ``rounding`` the rate is that of the rounded counts (the ones
    published beside it): an exact rate times a rounded count would give the exact count back.
    """
    for name, v in (("numerator", numerator), ("denominator", denominator)):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v < 0:
            raise InputError(f"safe_rate: the {name} must be a count of 0 or more, not {v!r}.")
    if numerator > denominator:
        raise InputError(f"safe_rate: the numerator ({numerator}) is larger than the denominator ({denominator}).")
    if denominator == 0:
        return SafeRate(None, NOT_APPLICABLE, False, "no denominator")
    small = lambda v: 1 <= v < threshold  # noqa: E731
    if small(numerator) or small(denominator) or small(denominator - numerator):
        return SafeRate(None, SUPPRESSED, True, f"based on fewer than {threshold} children")
    if rounding:
        numerator, denominator = round_count(numerator, rounding), round_count(denominator, rounding)
        if denominator == 0:
            return SafeRate(None, SUPPRESSED, True, f"based on fewer than {threshold} children")
    rate = numerator / denominator
    return SafeRate(rate, f"{100 * rate:.{decimals}f}%", False, "")
