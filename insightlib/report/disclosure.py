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

from insightlib.errors import InputError
from insightlib.contract import DISCLOSURE_THRESHOLD, MIN_AT_RISK
from insightlib.report import disclosure_solver as solver
from insightlib.report.disclosure_solver import Cell

#: DfE's symbol for a value suppressed to protect confidentiality.
SUPPRESSED = "c"
#: DfE's symbol for "not applicable" (a rate with no denominator).
NOT_APPLICABLE = "z"
#: Labels that mark a row or column as a total of the others.
TOTAL_LABELS = {"total", "all", "all children", "grand total"}


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
    if threshold < 1:
        raise InputError(f"Disclosure threshold must be 1 or more, not {threshold}.")
    if rounding is not None and rounding < 1:
        raise InputError(f"Rounding base must be a whole number of 1 or more, not {rounding}.")
    t = _Table.of(df, list(count_columns), margins, total_row, total_column)
    for ident in identities:
        t.eqs.append({t.cell(k): float(v) for k, v in ident.items()})
    notes: list[str] = []
    if any(abs(sum(coef * t.value(cell) for cell, coef in eq.items())) > 1e-9 for eq in t.eqs):
        notes.append("A total does not equal the sum of its parts; the difference is treated as known to readers.")
    reason = {
        cell: "primary" for cell in t.cells if 1 <= t.value(cell) < threshold or (suppress_zeros and t.value(cell) == 0)
    }
    pinned = {t.cell(k) for k in (known or {})}
    bounds = [(t.cell(a), t.cell(b)) for a, b in at_most]
    _protect(t, reason, pinned, bounds, threshold, 0 if suppress_zeros else 1, notes)
    display, mask, record = _shown(t, reason, rounding, symbol)
    return SuppressionResult(
        display=display,
        mask=mask,
        record=record,
        threshold=threshold,
        rounding=rounding,
        total_row=None if t.total_row is None else t.table.index[t.total_row],
        total_column=t.total_column,
        notes=notes,
    )


@dataclass
class _Table:
    """A table of counts as suppression sees it: its cells, their true values and the identities between them."""

    table: pd.DataFrame
    count_columns: list[str]
    total_row: int | None
    total_column: str | None
    eqs: list
    arr: np.ndarray
    col_pos: dict

    @classmethod
    def of(cls, df, count_columns, margins, total_row, total_column) -> _Table:
        """The table checked, with its margins added (``margins``) or its total row and column found."""
        if not count_columns:
            raise InputError("Disclosure control needs at least one count column.")
        values = _check_counts(df, count_columns)
        table = df.copy()
        if margins:
            if total_row is not None or total_column is not None or _find_total_row(df, count_columns) is not None:
                raise InputError(
                    "Disclosure control: margins=True was asked for, but the table already has a total row or column."
                )
            table, count_columns, total_column = _add_margins(table, count_columns, values)
            values = _check_counts(table, count_columns)
            row_pos: int | None = len(table) - 1
        else:
            if total_row is not None and total_row not in table.index:
                raise InputError(f"Disclosure control: no row labelled {total_row!r} to use as the total row.")
            row_pos = (
                int(table.index.get_loc(total_row)) if total_row is not None else _find_total_row(table, count_columns)
            )
            if total_column is None:
                total_column = next((c for c in count_columns if _is_total_label(c)), None)
            elif total_column not in count_columns:
                raise InputError(
                    f"Disclosure control: the total column {total_column!r} must be one of the count columns."
                )
        interior_cols = [c for c in count_columns if c != total_column]
        interior_rows = [r for r in range(len(table)) if r != row_pos]
        eqs = solver.margin_equations(values, interior_rows, interior_cols, row_pos, total_column)
        col_pos = {c: j for j, c in enumerate(values.columns)}
        return cls(table, count_columns, row_pos, total_column, eqs, values.to_numpy(dtype=float), col_pos)

    def value(self, cell: Cell) -> float:
        return self.arr[cell[0], self.col_pos[cell[1]]]

    @property
    def cells(self) -> list[Cell]:
        """Every published count (missing values are not cells)."""
        return [(r, c) for r in range(len(self.table)) for c in self.count_columns if not np.isnan(self.value((r, c)))]

    def cell(self, key) -> Cell:
        """A row label, or (row label, column), as a cell; an identity naming a cell the table lacks is an error."""
        row, col = key if isinstance(key, tuple) else (key, None)
        if col is None:
            if len(self.count_columns) != 1:
                raise InputError(
                    "Disclosure control: an identity over a table of several count columns must name "
                    "(row, column) cells."
                )
            col = self.count_columns[0]
        if row not in self.table.index or col not in self.count_columns:
            raise InputError(
                f"Disclosure control: an identity names a cell ({row!r}, {col!r}) the table does not have."
            )
        return int(self.table.index.get_loc(row)), col

    def order(self, cell: Cell) -> tuple:
        """Which complement to hide first: interior before totals, non-zero before zero, smallest first."""
        v = self.value(cell)
        margin = cell[0] == self.total_row or cell[1] == self.total_column
        return (margin, v == 0, v, cell[0], self.count_columns.index(cell[1]))


def _protect(t: _Table, reason: dict, pinned: set, bounds: list, threshold: int, lowest: int, notes: list) -> None:
    """Hide complements (into ``reason``) until no hidden cell is recoverable and each small one keeps at least
    ``threshold`` possible values: the row and column rule to a fixed point, then the exact check, then the
    protection interval, one complement at a time, each seen by the others in the next pass."""
    published = set(t.cells)

    def candidates(eq: dict) -> list[Cell]:
        return sorted((c for c in eq if c not in reason and c in published and c not in pinned), key=t.order)

    def narrow(hidden, cells) -> list[Cell]:
        return solver.narrow_cells(t.eqs, hidden, t.value, threshold, lowest, cells, bounds)

    while True:
        changed = True
        while changed:  # the row/column rule
            changed = False
            for eq in t.eqs:
                if sum(cell in reason for cell in eq) == 1 and (cand := candidates(eq)):
                    reason[cand[0]] = "secondary"
                    changed = True
        exposed = solver.recoverable_cells(t.eqs, reason)
        small = [] if exposed else narrow(reason, [c for c, why in reason.items() if why == "primary"])
        if not exposed and not small:
            return
        target = (exposed or small)[0]
        options = sorted({c for eq in t.eqs if target in eq for c in candidates(eq)}, key=t.order)
        if not options:  # every cell sharing an equation with it is already hidden: widen to any published cell
            options = sorted((c for c in published if c not in reason and c not in pinned), key=t.order)
        if not options:
            notes.append("Some suppressed cells could not be protected further: every cell is already hidden.")
            return
        if exposed:
            chosen = next(
                (o for o in options if target not in solver.recoverable_cells(t.eqs, [*reason, o])), options[0]
            )
        else:
            chosen = next((o for o in options if target not in narrow([*reason, o], [target])), options[-1])
        reason[chosen] = "secondary"


def _shown(
    t: _Table, reason: dict, rounding: int | None, symbol: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The display table (hidden cells as ``symbol``, the rest rounded when asked), its mask and the record."""
    table = t.table
    display = table.copy()
    mask = pd.DataFrame(False, index=table.index, columns=table.columns)
    for col in t.count_columns:
        j = table.columns.get_loc(col)
        shown: list[Any] = []
        for r in range(len(table)):
            v = t.value((r, col))
            if (r, col) in reason:
                shown.append(symbol)
                mask.iat[r, j] = True
            elif np.isnan(v):
                shown.append(table.iat[r, j])
            else:
                shown.append(round_count(v, rounding) if rounding else int(v))
        display[col] = pd.Series(shown, index=table.index, dtype=object)
    record = pd.DataFrame(
        [
            {"row": table.index[r], "column": c, "reason": why}
            for (r, c), why in sorted(reason.items(), key=lambda kv: (kv[0][0], t.count_columns.index(kv[0][1])))
        ],
        columns=["row", "column", "reason"],
    )
    return display, mask, record


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


def shares_shown(groups: Iterable[tuple[float, float]], threshold: int = DISCLOSURE_THRESHOLD) -> bool:
    """Whether a figure built from the shares of several groups may be published: ``groups`` is
    ``(with, size)`` per group. A difference of two shares, or a standardised difference of a yes/no
    characteristic, beside the group sizes can have one whole-number solution (-14.9 points of 6 and
    17 children; +0.412 with 9 and 20), so it is shown only when no count behind it, with or without,
    in any group, is from 1 to ``threshold - 1``: the rule that hides those counts in a table
    (``safe_rate``'s). A missing count (not a yes/no characteristic) hides nothing."""
    for with_, size in groups:
        if with_ is None or size is None or not (np.isfinite(with_) and np.isfinite(size)):
            continue
        if any(1 <= v < threshold for v in (with_, size - with_)):
            return False
    return True
