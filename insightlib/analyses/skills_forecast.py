"""The skills gap's projections: job adverts and NEET two years ahead, by the model with the smaller
back-test error on every area's series (stats.forecast)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib.analyses.skills_area import Area
from insightlib.ingest import skills as src
from insightlib.stats import forecast as fc

#: Interval level of the projections (the index and ranks use skills_gap.LEVEL).
PROJECTION_LEVEL = 0.8
#: Projections run this many years ahead; the back-test holds out as many years.
HORIZON = HOLDOUT = 2


def _series_row(table: pd.DataFrame, area: Area) -> pd.DataFrame:
    """The published series for the area itself: LADU for a council, LSIP/MCA rows for those."""
    level = {"council": "LADU", "lsip": "LSIP", "combined_authority": "MCA"}[area.kind]
    return table[(table["level"] == level) & (table["area"].map(src.name_key) == src.name_key(area.name))]


def adverts_trend(adverts: pd.DataFrame, area: Area) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Online job adverts per year (the file's unit), indexed 2019 = 100 beside England's regions' total."""
    own = _series_row(adverts, area)[["year", "adverts"]].sort_values("year")
    england = adverts[adverts["level"] == "GOR"].groupby("year", as_index=False)["adverts"].sum()
    england = england[england["year"].isin(own["year"])]
    base = lambda df: df.set_index("year")["adverts"] / df.set_index("year")["adverts"].get(2019, np.nan) * 100  # noqa: E731
    trend = pd.DataFrame(
        {
            "adverts": own.set_index("year")["adverts"],
            "index_2019": base(own),
            "england_index_2019": base(england) if len(england) else np.nan,
        }
    ).reset_index()
    panel = adverts[adverts["level"] == "LADU"].rename(columns={"adverts": "value"})
    forecast, back = project(own["year"], own["adverts"], panel)
    return trend, forecast, back


def neet_trend(lait: pd.DataFrame, area: Area) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """LAIT 16-17 NEET (%) by year for the area (cohort weights unknown here: councils' mean), England."""
    mine = lait[lait["la_code"].isin(area.councils)].groupby("year", as_index=False)["neet_pct"].mean()
    eng = lait[lait["area"] == "England"][["year", "neet_pct"]].rename(columns={"neet_pct": "england_neet_pct"})
    trend = mine.merge(eng, on="year", how="outer").sort_values("year")
    panel = lait[lait["la_code"].str.fullmatch(r"\d{3}")][["la_code", "year", "neet_pct"]]
    panel = panel.rename(columns={"la_code": "area", "neet_pct": "value"})
    forecast, back = project(mine["year"], mine["neet_pct"], panel)
    return trend, forecast, back


_BACKTESTS: dict = {}


def project(years, values, panel: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """A two-year projection by the model with the smaller back-test error on every area's series.

    Each model is refitted on every area's series (``panel``: area, year, value) without its last
    HOLDOUT years, and scored on them. The chosen model's interval is called reliable when the
    back-test's coverage is within 15 points of its nominal level.
    """
    key = (len(panel), float(panel["value"].sum()), float((panel["value"] * panel["year"]).sum()))
    if key not in _BACKTESTS:  # the same for every area of a run: computed once per process
        _BACKTESTS[key] = {
            m: fc.backtest_summary(fc.backtest(panel, holdout=HOLDOUT, model=m, level=PROJECTION_LEVEL))
            for m in fc.MODELS
        }
    back = _BACKTESTS[key]
    scored = {m: b for m, b in back.items() if b["mae"] is not None}
    model = min(scored, key=lambda m: scored[m]["mae"]) if scored else "trend"
    reliable = bool(scored) and scored[model]["coverage"] >= PROJECTION_LEVEL - 0.15
    back = {"holdout_years": HOLDOUT, "level": PROJECTION_LEVEL, "chosen": model, "reliable": reliable, "models": back}
    ok = pd.Series(values).notna().sum() >= 3
    out = fc.forecast(years, values, horizon=HORIZON, model=model, level=PROJECTION_LEVEL) if ok else pd.DataFrame()
    return out, back
