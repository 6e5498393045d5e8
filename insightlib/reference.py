"""DfE's own published reference data, shipped inside the package (sources in reference/SOURCES.md).

Open Government Licence v3.0 (DfE official statistics). Users will not have ../shared,
so the suite reads its own copies.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

from insightlib.errors import InputError

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
    names, former = _council_names()
    return names[la_code] if la_code in names else former.get(la_code, la_code)


@lru_cache(maxsize=1)
def _council_names() -> tuple[dict, dict]:
    """The councils' names by code, and former councils' (the first row of each code): read once, as every
    council's row of a table across councils is named."""
    la, former = local_authorities(), former_local_authorities().drop_duplicates("la_code")
    return dict(zip(la["la_code"], la["la_name"])), dict(zip(former["la_code"], former["la_name"]))


def rereferral_rates() -> pd.DataFrame:
    """Published referrals and re-referrals within 12 months, every council, 2013 to 2025.

    Numeric columns are floats with NaN where DfE published a symbol; the symbol itself is
    kept in ``<column>_symbol`` so reports can show "c" as suppressed, never as zero.
    """
    return _rereferral_rates().copy()


@lru_cache(maxsize=1)
def _rereferral_rates() -> pd.DataFrame:
    """rereferral_rates, parsed once per process (every council's report reads the same table)."""
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


# --- DfE's published re-referral figures (the one reading of rereferral_rates_by_la.csv's numbers) ---------


@lru_cache(maxsize=1)
def _published_rereferrals() -> pd.DataFrame:
    raw = rereferral_rates()
    return pd.DataFrame(
        {
            "la_code": raw["la_code"],
            "la_name": raw["la_name"],
            "region": raw["region_name"],
            "year": raw["year"],
            "referrals": raw["referral_count"],
            "rereferrals": raw["rereferral_count"],
            "rate": raw["rereferral_percent"] / 100.0,
            "referrals_symbol": raw["referral_count_symbol"],
            "rereferrals_symbol": raw["rereferral_count_symbol"],
            "rate_symbol": raw["rereferral_percent_symbol"],
        }
    )


def published_rereferral_rates(year: int | None = None) -> pd.DataFrame:
    """DfE's published 12-month re-referral figures, one row per council and year (``year``: that year only):
    la_code, la_name, region, year, referrals, rereferrals, rate (0-1) and the DfE symbol where a figure was
    not published (``<column>_symbol``; the number is then NaN, never 0)."""
    out = _published_rereferrals().copy()
    if year is not None:
        out = out.loc[out["year"] == year]
        if out.empty:
            raise InputError(
                f"DfE published no re-referral rates for {year}; years available: "
                f"{sorted(_published_rereferrals()['year'].unique())}."
            )
    return out.reset_index(drop=True)


def latest_published_rereferral_rate() -> pd.DataFrame:
    """Each council's latest published re-referral rate: index la_code, columns year and rate (0-1).

    Only years with a published rate count (a council whose latest figure is a symbol takes its year before).
    """
    pub = _published_rereferrals()
    pub = pub[pub["rate"].notna()].sort_values("year")
    latest = pub.groupby("la_code").tail(1).set_index("la_code")
    return latest[["year", "rate"]]


@lru_cache(maxsize=None)
def england_rereferral_rate(year: int) -> float:
    """England's rate: DfE's own figure where the package has it, else pooled over the published councils."""
    if year in ENGLAND_REREFERRAL_RATE:
        return ENGLAND_REREFERRAL_RATE[year]
    pub = published_rereferral_rates(year).dropna(subset=["referrals", "rereferrals"])
    return float(pub["rereferrals"].sum() / pub["referrals"].sum())


def latest_published_year() -> int:
    """The latest year of DfE's published re-referral figures."""
    return int(_published_rereferrals()["year"].max())
