"""Scenarios for commissioners from an intervention analysis: the effect estimate times the
council's own volumes (insightlib.stats.scenarios does the arithmetic)."""

from __future__ import annotations

import pandas as pd

from insightlib.contract import as_datetime
from insightlib.stats import scenarios as sc


def extract_date_of(tables, frame: pd.DataFrame):
    """The council's extract date (councils table), else the latest closure in the frame."""
    councils = (tables or {}).get("councils")
    if councils is not None and len(councils) and "extract_date" in councils.columns:
        d = pd.to_datetime(councils["extract_date"], errors="coerce").dropna()
        if len(d):
            return d.max()
    return as_datetime(frame["closure_date"]).max()


def for_intervention(
    frame: pd.DataFrame,
    effect,
    *,
    shares,
    estimand: str,
    horizon_days: int,
    level: float,
    extract_date=None,
    years: int = 3,
) -> sc.Scenarios | None:
    """Scenarios for the analysed cases (after trimming): eligible = closed cases like those analysed.

    ``effect`` has ``estimate`` and ``se`` (the headline risk difference at the horizon). None when
    the frame has no closure dates (a simulated frame) or no shares were asked for."""
    if not shares or "closure_date" not in frame.columns or not len(frame):
        return None
    closures = as_datetime(frame["closure_date"])
    end = pd.Timestamp(extract_date) if extract_date is not None else closures.max()
    volume = sc.annual_volume(closures, end, years=years)
    current = float(frame["treatment"].mean())
    return sc.scenarios(
        effect.estimate, effect.se, volume, current, shares, estimand=estimand, horizon_days=horizon_days, level=level
    )
