"""What if we offered more (or none)? Expected change in re-referrals per year.

A commissioner asks: if the intervention reached a share ``s`` more of the eligible cases
each year (or was withdrawn), how many more or fewer children would be re-referred within
the horizon? With

* ``tau``: the intervention's effect on the risk of re-referral within the horizon (a risk
  difference per case, negative when it helps), estimated with standard error ``se_tau``;
* ``V``: the eligible closed cases per year (next year's, predicted from the council's own
  recent years, with predictive variance ``var_V``);
* ``d``: the change in the share of eligible cases that receive it (``s``, capped so the
  share stays within 0 and 1; ``-current_share`` when withdrawn),

the expected change in re-referrals per year is ``d * V * tau``. ``tau`` and ``V`` are
estimated from different things (the effect from who came back, the volume from how many
cases closed), so they are taken as independent, and the variance of their product is exact
(Goodman 1960):

    Var(V tau) = V^2 se_tau^2 + tau^2 var_V + var_V se_tau^2

The interval is normal on that variance. The assumption that matters most is not
statistical: the children newly reached are assumed to respond as the estimate says. With an
ATT estimate (the effect among those who had it) that means new recipients are like past
ones; with an ATE (the effect had everyone in the analysis had it, against no one) that they
respond like the average eligible child. Neither is the effect among those *not* currently
offered it, which is what a scale-up adds; withdrawing it removes the effect among those who
had it, which the ATT estimates directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

#: The word in an evaluation file's scenario_shares that means "no one receives it".
NONE = "none"
DEFAULT_SHARES = (0.1, 0.25, NONE)
#: A 12-month window counts when the data begin no later than this many days into it (closures are a
#: steady flow: in a council's extract the first one comes within days of the start of its window).
COVER_SLACK_DAYS = 31


def check_shares(value) -> tuple[list, list[str]]:
    """Scenario shares from an evaluation file: numbers from -1 to 1 (not 0), in share of
    eligible cases (0.1 = 10 points more of them), or the word 'none'. Returns (shares, problems)."""
    if value is None:
        return [], []
    items = [value] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else value
    problems: list[str] = []
    out: list = []
    if not isinstance(items, (list, tuple)):
        return [], [f"'scenario_shares' must be a list such as [0.1, 0.25, none]; got {type(value).__name__}."]
    for v in items:
        if isinstance(v, str) and v.strip().lower() == NONE:
            if NONE not in out:
                out.append(NONE)
        elif (
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not -1 <= v <= 1 or v == 0
        ):
            problems.append(
                f"'scenario_shares' items must be shares of eligible cases from -1 to 1, not 0 (0.1 means 10 in "
                f"every 100 eligible cases more receive it; -0.1 fewer), or 'none' (no one receives it); got {v!r}."
            )
        elif float(v) not in out:
            out.append(float(v))
    return out, problems


@dataclass
class Volume:
    """Eligible closed cases per year: what a scenario multiplies the effect by."""

    per_year: float
    variance: float  # predictive variance of next year's count
    windows: list[str]  # the 12-month windows counted, latest last
    counts: list[int]
    how: str

    @property
    def se(self) -> float:
        return math.sqrt(max(self.variance, 0.0))

    def to_dict(self) -> dict:
        return {
            "per_year": self.per_year,
            "se": self.se,
            "windows": self.windows,
            "counts": self.counts,
            "how": self.how,
        }


def annual_volume(closure_dates, extract_date, *, years: int = 3, first_date=None) -> Volume:
    """Closures per 12-month window ending at the extract date, over the last ``years`` windows
    the data cover (from ``first_date``, default the earliest closure, give or take COVER_SLACK_DAYS).

    Next year's count is predicted by their mean; its variance is the year-to-year variance
    (never below the mean, as for a Poisson count), times (1 + 1/k) for the mean's own
    uncertainty over k windows. With one window only, it is the Poisson variance times 2.
    """
    d = pd.to_datetime(pd.Series(closure_dates)).dropna()
    end = pd.Timestamp(extract_date)
    start = pd.Timestamp(first_date) if first_date is not None else (d.min() if len(d) else end)
    counts, labels = [], []
    for k in range(years):
        hi = end - pd.DateOffset(years=k)
        lo = hi - pd.DateOffset(years=1)
        if lo + pd.Timedelta(days=COVER_SLACK_DAYS) < start and k > 0:
            break  # the data begin well inside this window: it would be undercounted
        counts.append(int(((d > lo) & (d <= hi)).sum()))
        labels.append(f"{(lo + pd.Timedelta(days=1)).date()} to {hi.date()}")
    counts, labels = counts[::-1], labels[::-1]
    kk = len(counts)
    mean = float(np.mean(counts))
    if kk >= 2:
        var = max(float(np.var(counts, ddof=1)), mean) * (1 + 1 / kk)
        how = (
            f"mean of the last {kk} years' closures; variance the larger of their year-to-year variance and "
            f"the mean (Poisson), times 1 + 1/{kk}"
        )
    else:
        var = 2 * mean
        how = "closures in the last year; Poisson variance, doubled for the mean's own uncertainty"
    return Volume(mean, var, labels, counts, how)


def fixed_volume(per_year: float, se: float = 0.0, how: str = "given") -> Volume:
    """A volume given directly (a commissioner's own figure), with its standard error."""
    return Volume(float(per_year), float(se) ** 2, [], [], how)


@dataclass
class Scenario:
    label: str
    requested: float | str  # the evaluation file's share, or 'none'
    share_change: float  # change in the share of eligible cases receiving it (after capping)
    new_share: float
    extra_cases: float  # change in cases receiving it per year (d * V)
    change: float  # expected change in re-referrals per year
    ci_low: float
    ci_high: float
    se: float
    capped: bool = False

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "requested": self.requested,
            "share_change": self.share_change,
            "new_share": self.new_share,
            "extra_cases_per_year": self.extra_cases,
            "change_in_rereferrals_per_year": self.change,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "se": self.se,
            "capped": self.capped,
        }


@dataclass
class Scenarios:
    """Every scenario for one council, with what each rests on."""

    effect: float
    effect_se: float
    estimand: str
    current_share: float
    volume: Volume
    horizon_days: int
    level: float
    scenarios: list[Scenario] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "effect_risk_difference": self.effect,
            "effect_se": self.effect_se,
            "estimand": self.estimand,
            "current_share": self.current_share,
            "volume": self.volume.to_dict(),
            "horizon_days": self.horizon_days,
            "confidence_level": self.level,
            "scenarios": [s.to_dict() for s in self.scenarios],
            "method": "change = share change x eligible cases per year x risk difference; variance of the product "
            "of independent estimates (Goodman 1960); normal interval",
        }


def product_interval(
    a: float, var_a: float, b: float, var_b: float, level: float = 0.95
) -> tuple[float, float, float, float]:
    """a*b with the exact variance of a product of independent estimates and a normal interval."""
    var = a * a * var_b + b * b * var_a + var_a * var_b
    se = math.sqrt(max(var, 0.0))
    z = float(stats.norm.ppf(0.5 + level / 2))
    est = a * b
    return est, est - z * se, est + z * se, se


def scenarios(
    effect: float,
    effect_se: float,
    volume: Volume,
    current_share: float,
    shares,
    *,
    estimand: str = "ATE",
    horizon_days: int = 365,
    level: float = 0.95,
) -> Scenarios:
    """The expected change in re-referrals per year for each requested share (see the module docstring).

    ``effect`` is a risk difference (treated minus untreated, a fraction), ``current_share`` the share
    of eligible cases that receive the intervention now. Shares that would take the share above 1 (or
    below 0) are capped, and say so."""
    if not 0 <= current_share <= 1:
        raise ValueError(f"current_share must be between 0 and 1, not {current_share}")
    out = Scenarios(
        float(effect), float(effect_se), estimand, float(current_share), volume, int(horizon_days), float(level)
    )
    for s in shares:
        if s == NONE:
            d = -current_share
            label = "No one receives it"
            capped = False
        else:
            s = float(s)
            target = min(max(current_share + s, 0.0), 1.0)
            d = target - current_share
            capped = not math.isclose(d, s)
            label = (
                f"{abs(s):.0%} more of eligible cases receive it"
                if s > 0
                else f"{abs(s):.0%} fewer of eligible cases receive it"
            )
        est, lo, hi, se = product_interval(volume.per_year, volume.variance, effect, effect_se**2, level)
        out.scenarios.append(
            Scenario(
                label,
                s,
                float(d),
                float(current_share + d),
                float(d * volume.per_year),
                float(d * est),
                float(min(d * lo, d * hi)),
                float(max(d * lo, d * hi)),
                float(abs(d) * se),
                capped,
            )
        )
    return out
