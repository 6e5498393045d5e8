"""The checks of single values and of dates within a row: required values, codes, yes/no fields, dates
that are not dates or lie in the future, and an end before its start. :mod:`.validate` runs them."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightlib import contract
from insightlib.ingest.files import parse_dates
from insightlib.ingest.validate_rules import CODE_NAMES, Collector, article, as_mask, codes_text, fmt_date, isin, quoted


def check_values(frames: dict[str, pd.DataFrame], out: Collector) -> dict[str, dict[str, pd.Series]]:
    """Required values, codes, booleans and dates (codes are upper-cased in place); returns the parsed dates."""
    dates: dict[str, dict[str, pd.Series]] = defaultdict(dict)
    for name, frame in frames.items():
        spec = contract.TABLES[name]
        for col in spec.required:
            if col != "la_code":
                out.rows(name, frame, as_mask(frame[col] == ""), col, "missing value", f"{col} is empty.")
        for col, codes in spec.codes.items():
            _check_codes(name, frame, col, codes, out)
        for col, codes in spec.multi_codes.items():
            _check_code_lists(name, frame, col, codes, out)
        for col in spec.booleans:
            low = frame[col].str.lower()
            bad = as_mask(low != "") & ~isin(low, list(contract.BOOLEAN_VALUES))
            out.rows(
                name,
                frame,
                bad,
                col,
                "not yes/no",
                lambda b, col=col: quoted(b[col]) + " is not yes/no (use true/false, yes/no, y/n or 1/0).",
            )
        for col in spec.dates:
            parsed, bad = parse_dates(frame[col])
            dates[name][col] = parsed
            out.rows(
                name,
                frame,
                bad.to_numpy(),
                col,
                "unparseable date",
                lambda b, col=col: quoted(b[col]) + " is not a date (write dates as YYYY-MM-DD).",
            )
    return dates


def _not_a_code(col: str, codes: tuple[str, ...]) -> str:
    return f" is not {article(CODE_NAMES.get(col, col))} code (" + codes_text(codes) + ")."


def _check_codes(name: str, frame: pd.DataFrame, col: str, codes: tuple[str, ...], out: Collector) -> None:
    """A coded column (upper-cased in place): every value present is one of the CIN codes."""
    frame[col] = frame[col].str.upper()
    bad = as_mask(frame[col] != "") & ~isin(frame[col], codes)
    out.rows(name, frame, bad, col, "unknown code", lambda b: quoted(b[col]) + _not_a_code(col, codes))


def _check_code_lists(name: str, frame: pd.DataFrame, col: str, codes: tuple[str, ...], out: Collector) -> None:
    """A list of codes in one cell (``2A;3B``, normalised in place): every part is a code; the first bad one is named."""
    frame[col] = frame[col].str.upper().str.replace(r"\s*[;,]\s*", ";", regex=True)
    lists = pc.split_pattern(pa.array(frame[col], type=pa.large_string()), ";")
    flat = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    bad_part = as_mask(pc.not_equal(flat, "")) & ~as_mask(pc.is_in(flat, value_set=pa.array(list(codes))))
    if not bad_part.any():
        return
    bad_rows = np.zeros(len(frame), dtype=bool)
    bad_rows[parent[bad_part]] = True
    first_bad = pd.Series(flat.to_numpy(zero_copy_only=False)[bad_part], index=parent[bad_part])
    first_bad = first_bad[~first_bad.index.duplicated()]
    out.rows(
        name,
        frame,
        bad_rows,
        col,
        "unknown code",
        lambda b: quoted(first_bad.reindex(b.index)) + _not_a_code(col, codes),
    )


def check_future_dates(frames, dates, today: pd.Timestamp, out: Collector) -> None:
    """Future dates: after the council's extract date, or after today."""
    extract = pd.Series(dtype="datetime64[ns]")
    if "councils" in frames:
        c = frames["councils"]
        extract = pd.Series(dates["councils"]["extract_date"].to_numpy(), index=c["la_code"].astype(object).to_numpy())
        extract = extract[~extract.index.duplicated()]
    for name, frame in frames.items():
        if name == "councils":
            d = dates[name]["extract_date"]
            out.rows(
                name,
                frame,
                as_mask(d > today),
                "extract_date",
                "date in the future",
                lambda b, d=d: "the extract date " + fmt_date(d[b.index]) + " is after today.",
            )
            continue
        codes, uniques = pd.factorize(frame["la_code"])
        per_council = extract.reindex(np.asarray(uniques, dtype=object)).to_numpy(dtype="datetime64[ns]")
        per_council = np.where(
            np.isnat(per_council) | (per_council > today.to_datetime64()), today.to_datetime64(), per_council
        )
        limit = pd.Series(per_council[codes] if len(codes) else np.array([], dtype="datetime64[ns]"), index=frame.index)
        for col, d in dates[name].items():
            out.rows(
                name,
                frame,
                as_mask(d > limit),
                col,
                "date in the future",
                lambda b, col=col, d=d, limit=limit: (
                    col + " " + fmt_date(d[b.index]) + " is after the council's "
                    "extract date (" + fmt_date(limit[b.index]) + ")."
                ),
            )


def check_date_order(frames, dates, out: Collector) -> None:
    """Order of dates within a row (a closure before its referral, an end before its start)."""
    pairs = {
        "referrals": ("referral_date", "closure_date", "closure before referral"),
        "assessments": ("start_date", "authorised_date", "end before start"),
        "plans": ("start_date", "end_date", "end before start"),
        "interventions": ("start_date", "end_date", "end before start"),
        "allocations": ("start_date", "end_date", "end before start"),
    }
    for name, (start_col, end_col, rule) in pairs.items():
        if name not in frames:
            continue
        s, e = dates[name][start_col], dates[name][end_col]
        if name == "referrals":
            text = lambda b, s=s, e=e: (
                "the case closes (" + fmt_date(e[b.index]) + ") before the referral (" + fmt_date(s[b.index]) + ")."
            )
        else:
            text = lambda b, s=s, e=e, end_col=end_col, start_col=start_col: (
                end_col + " " + fmt_date(e[b.index]) + " is before " + start_col + " " + fmt_date(s[b.index]) + "."
            )
        out.rows(name, frames[name], as_mask(e < s), end_col, rule, text)
