"""What validation checks, and how a broken rule becomes a problem a person can act on.

``RULES`` names every rule; :class:`Collector` turns a mask of rows that break one into problems naming
file, row, column and rule (at most ``DETAIL_LIMIT`` rows listed one by one per file, rule and council);
the rest are the Arrow helpers the checks share, so that no check loops in Python over rows.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightlib.ingest.files import CELL_ROW_PREFIX, Problem, location

#: Every rule, with what it means (docs/data-contract.md lists the same).
RULES = {
    "missing table": "a required table (councils, children, referrals) has no file",
    "empty file": "a file with nothing in it, or a required table with a header but no rows",
    "missing column": "a required column is not in the file's header",
    "unreadable file": "the file cannot be read in its format (ragged CSV rows, a damaged workbook ...)",
    "wrong encoding": "the file is not UTF-8 text",
    "broken XML": "the XML is not well formed, or has stray text between elements",
    "missing value": "a required column is empty in a row",
    "unparseable date": "a date that is not YYYY-MM-DD (or DD/MM/YYYY)",
    "date in the future": "a date after the council's extract date (or today)",
    "closure before referral": "a case closes before its referral",
    "end before start": "a plan, assessment, intervention or allocation ends before it starts",
    "before referral": "an assessment or plan starts before its referral",
    "unknown code": "a value that is not in the CIN code list for that column",
    "unknown council": "an la_code that is not a council code",
    "duplicate id": "the table's key (e.g. referral_id) appears more than once",
    "over 25": "the child was over 25 at referral",
    "referral before birth": "a referral dated before the child's date of birth",
    "not present": "a row refers to a council, child or referral that the data does not have",
    "not yes/no": "a yes/no field with another value",
    "too big": "a workbook or sheet past the size or row limit (a damaged file or a zip bomb?)",
    "duplicate list": "two sheets of an Annex A workbook claim the same list",
}

#: Rows listed one by one per (file, column, rule, council); the rest are counted in one line.
DETAIL_LIMIT = 50


class Collector:
    """Turns row masks into Problems, listing at most DETAIL_LIMIT rows per kind and council."""

    def __init__(self):
        self.problems: list[Problem] = []
        self.faults: dict[str, np.ndarray] = {}
        self.row_level: set[int] = set()

    def mark(self, table: str, frame: pd.DataFrame, mask, rule: str) -> None:
        """Remember the first rule each row breaks (for loading what is clean)."""
        mask = np.asarray(mask, dtype=bool)
        faults = self.faults.setdefault(table, np.full(len(frame), None, dtype=object))
        faults[mask & (faults == None)] = rule  # noqa: E711 - elementwise

    def add(self, p: Problem) -> None:
        self.problems.append(p)

    def rows(
        self,
        table: str,
        frame: pd.DataFrame,
        mask: pd.Series | np.ndarray,
        column: str | None,
        rule: str,
        describe: Callable[[pd.DataFrame], pd.Series] | str,
    ) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        row_level = table != "councils"
        if row_level:
            self.mark(table, frame, mask, rule)
        bad = frame.loc[mask]
        row_col = CELL_ROW_PREFIX + column if column and CELL_ROW_PREFIX + column in bad.columns else "_row"
        la = bad["la_code"] if "la_code" in bad.columns else pd.Series("", index=bad.index)
        la = la.fillna("").astype(str)
        groups = bad.groupby([bad["_file"], bad["_sheet"], la], sort=False, dropna=False)
        for (file, sheet, la_code), sub in groups:
            head = sub.head(DETAIL_LIMIT)
            texts = describe(head) if callable(describe) else pd.Series(describe, index=head.index)
            for row, text in zip(head[row_col].to_numpy(), texts.to_numpy()):
                row = int(row)
                self.problems.append(
                    Problem(
                        file,
                        row,
                        column,
                        rule,
                        f"{location(file, row, sheet or None, column)}: {text}",
                        la_code=la_code or None,
                        table=table,
                    )
                )
                if row_level:
                    self.row_level.add(id(self.problems[-1]))
            extra = len(sub) - len(head)
            if extra:
                self.problems.append(
                    Problem(
                        file,
                        None,
                        column,
                        rule,
                        f"{location(file, None, sheet or None, column)}: and {extra:,} more rows break the same rule "
                        f"({rule}: {RULES[rule]}).",
                        la_code=la_code or None,
                        table=table,
                    )
                )
                if row_level:
                    self.row_level.add(id(self.problems[-1]))


def fmt_date(d: pd.Series) -> pd.Series:
    return d.dt.strftime("%Y-%m-%d").fillna("")


def quoted(s: pd.Series, limit: int = 40) -> pd.Series:
    return "'" + s.fillna("").astype(str).str.slice(0, limit) + "'"


def as_mask(x) -> np.ndarray:
    """A plain numpy bool mask from a pandas/Arrow boolean result (missing counts as False)."""
    if isinstance(x, np.ndarray):
        return x.astype(bool)
    return pd.Series(x).to_numpy(dtype=bool, na_value=False)


def as_arrow(values) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(pa.large_string())
    return pa.array(values, type=pa.large_string())


def isin(series: pd.Series, values) -> np.ndarray:
    """Membership in Arrow (pandas' isin on Arrow strings loops in Python over the value set)."""
    return as_mask(
        pc.is_in(as_arrow(series), value_set=as_arrow(list(values) if isinstance(values, (set, tuple)) else values))
    )


def join_key(frame: pd.DataFrame, *cols: str) -> pd.Series:
    """A composite key (council + id) as one Arrow string column, for joins without Python loops."""
    out = frame[cols[0]]
    for c in cols[1:]:
        out = out + "\x1f" + frame[c]
    return out


def lookup(keys: pd.Series, table_keys: pd.Series, values: np.ndarray) -> np.ndarray:
    """values[i] of the first row of table_keys equal to each key (NaT/NaN where none)."""
    uniq = ~table_keys.duplicated().to_numpy()
    table_arr = pa.array(table_keys[uniq], type=pa.large_string())
    pos = pc.index_in(pa.array(keys, type=pa.large_string()), value_set=table_arr)
    pos = pos.to_numpy(zero_copy_only=False)
    found = ~np.isnan(pos.astype(float))
    vals = values[uniq]
    out = (
        np.full(len(keys), np.datetime64("NaT"), dtype=vals.dtype)
        if vals.dtype.kind == "M"
        else np.full(len(keys), None, dtype=object)
    )
    out[found] = vals[pos[found].astype(np.int64)]
    return out


#: How a code column is named in messages.
CODE_NAMES = {
    "factors": "assessment factor",
    "referral_source": "referral source",
    "primary_need": "primary need",
    "closure_reason": "closure reason",
    "category_of_abuse": "category of abuse",
    "plan_type": "plan type",
    "disability": "disability",
    "sex": "sex",
    "ethnicity": "ethnicity",
}


def article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def codes_text(codes: tuple[str, ...]) -> str:
    return ", ".join(codes) if len(codes) <= 12 else ", ".join(codes[:10]) + f" ... {codes[-1]}"
