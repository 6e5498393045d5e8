"""DfE's own published reference data, shipped inside the package (sources in reference/SOURCES.md).

Open Government Licence v3.0 (DfE official statistics). Users will not have ../shared,
so the suite reads its own copies.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

#: DfE's symbols for values that are not numbers: kept as such, never read as zero.
DFE_SYMBOLS = {"c": "suppressed", "x": "not available", "u": "low reliability", "z": "not applicable"}

#: England figures from the same DfE release (share of referrals within 12 months of a previous one).
ENGLAND_REREFERRAL_RATE = {2024: 0.224, 2025: 0.226}


def _path(name: str):
    return resources.files("insightlib") / "reference" / name


@lru_cache(maxsize=None)
def _read(name: str) -> pd.DataFrame:
    with _path(name).open("rb") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def local_authorities() -> pd.DataFrame:
    """The 153 councils: la_code, la_name, ons_code, region."""
    return _read("local_authorities.csv").copy()


def former_local_authorities() -> pd.DataFrame:
    return _read("local_authorities_former.csv").copy()


def council_codes(include_former: bool = True) -> set[str]:
    codes = set(local_authorities()["la_code"])
    if include_former:
        codes |= set(former_local_authorities()["la_code"])
    return codes


def council_name(la_code: str | int) -> str:
    from .contract import council_code

    la_code = council_code(la_code)
    la = local_authorities().set_index("la_code")["la_name"]
    if la_code in la.index:
        return la[la_code]
    former = former_local_authorities().drop_duplicates("la_code").set_index("la_code")["la_name"]
    return former.get(la_code, la_code)


def rereferral_rates() -> pd.DataFrame:
    """Published referrals and re-referrals within 12 months, every council, 2013 to 2025.

    Numeric columns are floats with NaN where DfE published a symbol; the symbol itself is
    kept in ``<column>_symbol`` so reports can show "c" as suppressed, never as zero.
    """
    raw = _read("rereferral_rates_by_la.csv").copy()
    out = raw.rename(columns={"old_la_code": "la_code", "time_period": "year"}).copy()
    out["year"] = out["year"].astype(int)
    numeric = [c for c in out.columns if c.endswith(("_count", "_percent"))]
    for col in numeric:
        values = out[col].str.strip()
        is_symbol = values.str.lower().isin(DFE_SYMBOLS.keys())
        out[col + "_symbol"] = values.where(is_symbol, "")
        out[col] = pd.to_numeric(values.where(~is_symbol), errors="coerce")
    return out


def statistical_neighbours() -> pd.DataFrame:
    """Each council's ten statistical neighbours (DfE's 2025 model): la_code, rank, neighbour_la_code, closeness."""
    out = _read("statistical_neighbours_2025.csv").copy()
    out["rank"] = out["rank"].astype(int)
    return out


def neighbours_of(la_code: str) -> list[str]:
    sn = statistical_neighbours()
    return sn.loc[sn["la_code"] == la_code].sort_values("rank")["neighbour_la_code"].tolist()
