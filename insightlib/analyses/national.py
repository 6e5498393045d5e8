"""The national picture for leaders: where does each council's re-referral rate stand against England?

Two sources, never mixed in one chart:

* the councils' own computed DfE measure (``dfe_measure`` in each council's results.json:
  ``{"rate", "referrals", "rereferrals"}``, optionally ``"year"``), and
* DfE's published rates for all 153 councils, 2013 to 2025 (``insightlib.reference``),
  with DfE's symbols (c suppressed, x not available, u low reliability) shown as such,
  never as zero.

Funnel plots follow Spiegelhalter (2005, *Statistics in Medicine* 24:1185-1202): the
target is England's rate; the 95% and 99.8% control limits are **exact binomial** limits
with his interpolation between the integer quantiles (so the limits are smooth in n):
with ``r`` the smallest count whose binomial probability ``F(r) >= p``,
``alpha = (F(r) - p) / (F(r) - F(r - 1))`` and the limit is ``(r - alpha) / n``.
``method="normal"`` gives ``target +/- z * sqrt(target * (1 - target) / n)`` instead.
Between councils, rates vary more than chance alone allows (over-dispersion); with
``overdispersion=True`` the limits are widened by the multiplicative factor estimated from
10%-winsorised z-scores, as Spiegelhalter recommends, and the factor is reported.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib import patheffects, ticker
from scipy import stats

from insightlib.report import charts
from insightlib import reference
from insightlib.report.disclosure import round_count, safe_rate
from insightlib.errors import InputError
from insightlib.contract import DISCLOSURE_THRESHOLD

#: Control limit levels: two-sided coverage (95% ~ 2 standard errors, 99.8% ~ 3).
LEVELS = (0.95, 0.998)
BANDS = ("above 99.8% limit", "above 95% limit", "within limits", "below 95% limit", "below 99.8% limit")


def _level_key(level: float) -> str:
    return f"{level * 100:g}".replace(".", "_")


def control_limits(n: Iterable[float] | float, target: float, levels: Iterable[float] = LEVELS, *,
                   method: str = "exact", phi: float = 1.0) -> pd.DataFrame:
    """Lower and upper control limits for a proportion at each denominator ``n``.

    Columns ``n``, ``lower_95``, ``upper_95``, ``lower_99_8``, ``upper_99_8`` (one pair per
    level). ``phi`` > 1 widens the limits for over-dispersion (normal form, as in the paper).
    """
    if not 0 < target < 1:
        raise InputError(f"Funnel plot: the target rate must be between 0 and 1, not {target}.")
    if method not in ("exact", "normal"):
        raise InputError(f"Funnel plot: method must be 'exact' or 'normal', not {method!r}.")
    n_arr = np.atleast_1d(np.asarray(n, dtype=float))
    if (n_arr <= 0).any():
        raise InputError("Funnel plot: every denominator must be 1 or more.")
    out = pd.DataFrame({"n": n_arr})
    for level in levels:
        key = _level_key(level)
        lo_p, hi_p = (1 - level) / 2, 1 - (1 - level) / 2
        if method == "normal" or phi > 1:
            z = stats.norm.ppf(hi_p)
            half = z * np.sqrt(phi * target * (1 - target) / n_arr)
            lower, upper = target - half, target + half
        else:
            lower, upper = _exact_limit(n_arr, target, lo_p), _exact_limit(n_arr, target, hi_p)
        out[f"lower_{key}"] = np.clip(lower, 0.0, 1.0)
        out[f"upper_{key}"] = np.clip(upper, 0.0, 1.0)
    return out


def _exact_limit(n: np.ndarray, target: float, p: float) -> np.ndarray:
    n_int = np.round(n).astype(int)
    r = stats.binom.ppf(p, n_int, target)
    f_r = stats.binom.cdf(r, n_int, target)
    f_r1 = stats.binom.cdf(r - 1, n_int, target)
    alpha = (f_r - p) / (f_r - f_r1)
    return (r - alpha) / n_int


def overdispersion_factor(events: np.ndarray, n: np.ndarray, target: float, winsor: float = 0.1) -> float:
    """Spiegelhalter's multiplicative over-dispersion factor phi from winsorised z-scores (1 if none)."""
    rate = events / n
    z = (rate - target) / np.sqrt(target * (1 - target) / n)
    lo, hi = np.quantile(z, [winsor, 1 - winsor])
    zw = np.clip(z, lo, hi)
    phi = float(np.mean(zw**2))
    # Only widen when the excess variation is beyond chance (chi-squared test on I - 1 df).
    if len(z) > 1 and len(z) * phi > stats.chi2.ppf(0.95, len(z) - 1):
        return phi
    return 1.0


@dataclass
class FunnelResult:
    """Councils placed against England's rate with control limits."""

    points: pd.DataFrame  # la_code, la_name, n, events, rate, z, band
    target: float
    method: str
    phi: float
    limits: pd.DataFrame
    title: str
    measure: str = "re-referral rate"
    year: int | None = None
    highlight: list[str] = field(default_factory=list)
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)

    def band_of(self, la_code: str) -> str:
        row = self.points.loc[self.points["la_code"] == la_code]
        return row["band"].iat[0] if len(row) else "not shown"

    def outliers(self, level: float = 0.998) -> list[str]:
        """Councils outside the limits at ``level`` (0.95 includes those outside 99.8%)."""
        bands = {BANDS[0], BANDS[4]} if level == 0.998 else {BANDS[0], BANDS[1], BANDS[3], BANDS[4]}
        return self.points.loc[self.points["band"].isin(bands), "la_code"].tolist()

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "method": self.method,
            "overdispersion_phi": self.phi,
            "year": self.year,
            "councils": {
                r.la_code: {"n": int(r.n), "events": int(r.events), "rate": float(r.rate), "band": r.band}
                for r in self.points.itertuples()
            },
        }

    def table(self) -> pd.DataFrame:
        t = self.points[["la_code", "la_name", "n", "events", "rate", "band"]].copy()
        return t.sort_values("rate", ascending=False).reset_index(drop=True)

    def alt_text(self) -> str:
        """What the funnel shows, for a reader who cannot see it."""
        counts = self.points["band"].value_counts()
        above = int(counts.get(BANDS[0], 0))
        below = int(counts.get(BANDS[4], 0))
        text = (f"Funnel plot of the {self.measure} of {len(self.points)} councils against the number of referrals. "
                f"England's rate is {100 * self.target:.1f}%. "
                f"{_councils(above)} {'lies' if above <= 1 else 'lie'} above the 99.8% control limit and {below} below it.")
        for code in self.highlight:
            row = self.points.loc[self.points["la_code"] == code]
            if len(row):
                r = row.iloc[0]
                text += f" {r.la_name}: {100 * r.rate:.1f}% of {int(r.n):,} referrals, {r.band}."
        if self.phi > 1:
            text += f" Limits widened for over-dispersion (factor {self.phi:.1f})."
        return text

    def plot(self, width: float = 7.5, height: float = 4.5):
        """The funnel; ``width`` 4.8 gives a version whose text stays readable on a phone."""
        fig, ax = charts.new_figure(self.title if width >= 6 else _wrap(self.title, 45), width=width, height=height)
        grid = self.limits
        kind = f"widened for over-dispersion \u00d7{self.phi:.1f}" if self.phi > 1 else "binomial"
        for level, style in zip(LEVELS, ("--", ":")):
            key = _level_key(level)
            label = f"{level * 100:g}% limits ({kind})"
            ax.plot(grid["n"], 100 * grid[f"upper_{key}"], style, color=charts.DARK_GREY, lw=1, label=label)
            ax.plot(grid["n"], 100 * grid[f"lower_{key}"], style, color=charts.DARK_GREY, lw=1)
        ax.axhline(100 * self.target, color=charts.DARK_GREY, lw=1.2, label=f"England {100 * self.target:.1f}%")
        pts = self.points
        flagged = pts["band"] != "within limits"
        ax.scatter(pts.loc[~flagged, "n"], 100 * pts.loc[~flagged, "rate"], s=18, color=charts.DARK_BLUE,
                   alpha=0.8, label="council within limits", zorder=3)
        ax.scatter(pts.loc[flagged, "n"], 100 * pts.loc[flagged, "rate"], s=22, color=charts.ORANGE,
                   marker="D", label="council outside 95% limits", zorder=3)
        labelled = []
        for code in self.highlight:
            row = pts.loc[pts["la_code"] == code]
            if len(row):
                r = row.iloc[0]
                ax.scatter([r.n], [100 * r.rate], s=90, facecolors="none", edgecolors=charts.DARK_PINK, lw=2, zorder=4)
                labelled.append(r)
        top = max(100 * pts["rate"].max() * 1.15, 200 * self.target)
        ax.set_ylim(0, min(100.0, top))
        plain = ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}")
        if grid["n"].max() / grid["n"].min() > 20:  # a wide range of council sizes: log scale
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel("Referrals in the year (log scale)")
        else:
            ax.xaxis.set_major_locator(ticker.MaxNLocator(5 if width >= 6 else 4))
            ax.set_xlabel("Referrals in the year")
        ax.xaxis.set_major_formatter(plain)
        ax.set_ylabel("Re-referred within 12 months (%)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
        _place_labels(fig, ax, labelled, np.log(grid["n"]).mean())
        return fig


def _overlaps(box, boxes) -> bool:
    return any(box.overlaps(other) for other in boxes)


def _place_labels(fig, ax, rows, middle_log_n: float) -> None:
    """Name each highlighted council beside its point, never over another name: each label tries
    places above and below its point, nearest first, then the other side, and takes the first free one."""
    renderer = fig.canvas.get_renderer()
    placed = []
    for r in sorted(rows, key=lambda r: -r.rate):
        right_half = np.log(r.n) > middle_log_n  # towards the middle of the chart, never off it
        label = None
        tries = [(dx, dy) for dy in (6, -14, 16, -24, 26, -34, 36, -44) for dx in
                 ((-6, 6) if right_half else (6, -6))]
        for dx, dy in tries:
            if label is not None:
                label.remove()
            label = ax.annotate(r.la_name, (r.n, 100 * r.rate), xytext=(dx, dy), textcoords="offset points",
                                ha="right" if dx < 0 else "left", color=charts.DARK_PINK, fontweight="bold")
            label.set_path_effects([patheffects.withStroke(linewidth=3, foreground="white")])
            box = label.get_window_extent(renderer).expanded(1.02, 1.1)
            if not _overlaps(box, placed) and ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1):
                break
        placed.append(label.get_window_extent(renderer).expanded(1.02, 1.1))


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def funnel(data: pd.DataFrame, *, events: str = "rereferrals", n: str = "referrals", target: float | None = None,
           method: str = "exact", overdispersion: bool = False, title: str | None = None,
           highlight: Iterable[str] = (), year: int | None = None, phi: float | None = None) -> FunnelResult:
    """Place each council (rows with la_code, ``events``, ``n``) in a funnel around ``target``.

    The target defaults to the pooled rate of the councils given. Rows without both counts
    (DfE symbols, suppressed figures) are left out of the plot and listed in ``excluded``.
    ``phi`` gives the over-dispersion factor to widen the limits by (a funnel of a few councils takes
    the one estimated from every council's published figures, so both funnels are read alike).
    """
    for col in ("la_code", events, n):
        if col not in data.columns:
            raise InputError(f"Funnel plot: the data has no '{col}' column; it has {list(data.columns)}.")
    df = data.copy()
    df["events"] = pd.to_numeric(df[events], errors="coerce")
    df["n"] = pd.to_numeric(df[n], errors="coerce")
    usable = df["events"].notna() & df["n"].notna() & (df["n"] > 0)
    excluded, df = df.loc[~usable].copy(), df.loc[usable].copy()
    if df.empty:
        raise InputError("Funnel plot: no council has both a numerator and a denominator.")
    if (df["events"] > df["n"]).any():
        bad = df.loc[df["events"] > df["n"], "la_code"].tolist()
        raise InputError(f"Funnel plot: councils {bad} have more re-referrals than referrals.")
    if "la_name" not in df.columns:
        df["la_name"] = df["la_code"].map(reference.council_name)
    if target is None:
        target = float(df["events"].sum() / df["n"].sum())
    df["rate"] = df["events"] / df["n"]
    df["z"] = (df["rate"] - target) / np.sqrt(target * (1 - target) / df["n"])
    if phi is None:
        phi = overdispersion_factor(df["events"].to_numpy(float), df["n"].to_numpy(float), target) if overdispersion else 1.0
    at_points = control_limits(df["n"], target, method=method, phi=phi)

    def band(i: int) -> str:
        rate = df["rate"].iat[i]
        lim = at_points.iloc[i]
        if rate > lim["upper_99_8"]:
            return BANDS[0]
        if rate > lim["upper_95"]:
            return BANDS[1]
        if rate < lim["lower_99_8"]:
            return BANDS[4]
        if rate < lim["lower_95"]:
            return BANDS[3]
        return BANDS[2]

    df["band"] = [band(i) for i in range(len(df))]
    lo, hi = max(1.0, df["n"].min() * 0.7), df["n"].max() * 1.3
    grid = control_limits(np.unique(np.round(np.geomspace(lo, hi, 200))), target, method=method, phi=phi)
    points = df[["la_code", "la_name", "n", "events", "rate", "z", "band"]].reset_index(drop=True)
    return FunnelResult(points=points, target=target, method=method, phi=phi, limits=grid,
                        title=title or "Most councils' re-referral rates are within the range chance allows",
                        year=year, highlight=list(highlight), excluded=excluded)


# --- published DfE figures ----------------------------------------------------------------


@lru_cache(maxsize=1)
def _published_all() -> pd.DataFrame:
    raw = reference.rereferral_rates()
    return pd.DataFrame({
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
    })


def published_rates(year: int | None = None) -> pd.DataFrame:
    """DfE's published 12-month re-referral figures: la_code, la_name, region, year, referrals,
    rereferrals, rate (0-1) and the DfE symbol where a figure was not published."""
    out = _published_all().copy()
    if year is not None:
        out = out.loc[out["year"] == year]
        if out.empty:
            raise InputError(f"DfE published no re-referral rates for {year}; years available: "
                             f"{sorted(_published_all()['year'].unique())}.")
    return out.reset_index(drop=True)


@lru_cache(maxsize=None)
def england_rate(year: int) -> float:
    """England's rate: DfE's own figure where the package has it, else pooled over published councils."""
    if year in reference.ENGLAND_REREFERRAL_RATE:
        return reference.ENGLAND_REREFERRAL_RATE[year]
    pub = published_rates(year).dropna(subset=["referrals", "rereferrals"])
    return float(pub["rereferrals"].sum() / pub["referrals"].sum())


def latest_year() -> int:
    return int(published_rates()["year"].max())


def published_funnel(year: int | None = None, highlight: Iterable[str] = (), overdispersion: bool = True,
                     **kw) -> FunnelResult:
    """The funnel of DfE's published rates for one year (latest by default) around England's rate.

    Councils' published rates vary far more than binomial chance allows (the over-dispersion
    factor is about 27 in 2025), so plain binomial limits put two councils in three outside
    the funnel; by default the limits are widened for over-dispersion (``overdispersion=False``
    gives the plain exact binomial limits).
    """
    year = year or latest_year()
    pub = published_rates(year)
    return funnel(pub, target=england_rate(year), year=year, highlight=highlight, overdispersion=overdispersion,
                  title=f"Where each council's re-referral rate stands against England, {year - 1} to {year}", **kw)


def display_value(value: float, symbol: str, kind: str) -> str:
    """A published figure as text: DfE's symbol if there is one (never 0), else the number."""
    if isinstance(symbol, str) and symbol.strip():
        return symbol.strip()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "x"
    if kind == "rate":
        return f"{100 * value:.1f}%"
    return f"{int(round(value)):,}"


def trend_plot(la_code: str, neighbours: bool = True, width: float = 7.5, height: float = 4.5):
    """A council's published rate, 2013 to 2025, beside England and its statistical neighbours.

    Years DfE did not publish (c, x, u) are gaps in the line, labelled with the symbol.
    Returns (figure, alt text).
    """
    pub = published_rates()
    mine = pub.loc[pub["la_code"] == la_code].sort_values("year")
    if mine.empty:
        raise InputError(f"No published re-referral rates for council {la_code!r}.")
    name = reference.council_name(la_code)
    years = sorted(pub["year"].unique())
    eng = pd.Series({y: england_rate(int(y)) for y in years})
    title = f"{name}'s re-referral rate over time, against England"
    fig, ax = charts.new_figure(title if width >= 6 else _wrap(title, 45), width=width, height=height)
    ax.plot(eng.index, 100 * eng.values, color=charts.DARK_GREY, lw=1.5, label="England")
    sn_text = ""
    if neighbours:
        sn = reference.neighbours_of(la_code)
        if sn:
            sn_rates = pub.loc[pub["la_code"].isin(sn)].groupby("year")["rate"].median()
            ax.plot(sn_rates.index, 100 * sn_rates.values, color=charts.TURQUOISE, lw=1.5,
                    label="Statistical neighbours (median)")
            sn_text = (f" The median of its ten statistical neighbours was "
                       f"{100 * sn_rates.get(years[-1], float('nan')):.1f}% in {years[-1]}.")
    series = mine.set_index("year")["rate"].reindex(years)
    ax.plot(series.index, 100 * series.values, color=charts.DARK_BLUE, lw=2.5, marker="o", label=name)
    symbols = mine.set_index("year")["rate_symbol"]
    for y, s in symbols.items():
        if s:
            ax.annotate(s, (y, 100 * eng.get(y, np.nan)), xytext=(0, -14), textcoords="offset points",
                        ha="center", color=charts.DARK_PINK, fontweight="bold")
    ax.set_xlabel("Year to 31 March")
    ax.set_ylabel("Re-referred within 12 months (%)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3 if width >= 6 else 2, fontsize=8, frameon=False)
    last = mine.iloc[-1]
    last_text = display_value(last["rate"], last["rate_symbol"], "rate")
    alt = (f"Line chart of {name}'s published 12-month re-referral rate from {years[0]} to {years[-1]}, with England"
           f" for comparison. In {int(last['year'])} {name}'s rate was {last_text} against England's "
           f"{100 * eng[years[-1]]:.1f}%.{sn_text}")
    missing = [f"{int(y)} ({s})" for y, s in symbols.items() if s]
    if missing:
        alt += f" Not published for {', '.join(missing)}: c suppressed, x not available, u low reliability."
    return fig, alt


# --- councils' own computed measure ------------------------------------------------------------


def _latest_measure(m) -> dict | None:
    """The measure to compare: a flat {"rate", "referrals", "rereferrals"[, "year"]}, or from the
    survival notebook's {"<year>": {..., "complete": bool}} the latest complete year."""
    if not isinstance(m, dict) or not m:
        return None
    if "referrals" in m or "rate" in m:
        return m
    years = []
    for key, v in m.items():
        if isinstance(v, dict) and str(key).isdigit() and v.get("complete", True):
            years.append((int(key), v))
    if not years:
        return None
    year, v = max(years, key=lambda kv: kv[0])
    return {**v, "year": year}


def _rounding_of(value) -> int | None:
    """A council's ``rounding`` parameter from results.json (None, NaN or 0: exact counts)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or not int(value):
        return None
    return int(value)


def collect_dfe_measures(reports_dir: str | Path) -> pd.DataFrame:
    """Every council's computed DfE measure from results.json under ``reports_dir`` (never from HTML).

    Columns: evaluation, la_code, la_name, referrals, rereferrals, rate, year, created. One row
    per council: where several evaluations computed it, the most recent is kept.
    """
    rows = []
    for path in sorted(Path(reports_dir).glob("*/*/results.json")):
        if any(part.startswith(("_", ".")) for part in path.relative_to(reports_dir).parts):
            continue
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable results.json ({exc}).") from None
        m = _latest_measure(res.get("dfe_measure"))
        if m is None or res.get("la_code") in (None, "all", "national"):
            continue
        la = str(res["la_code"])
        rows.append({
            "evaluation": path.parent.parent.name,
            "la_code": la,
            "la_name": reference.council_name(la),
            "referrals": m.get("referrals"),
            "rereferrals": m.get("rereferrals"),
            "rate": m.get("rate"),
            "year": m.get("year"),
            "created": res.get("created", ""),
            # the council's own report controlled these figures with its threshold: never show more here
            "threshold": (res.get("parameters") or {}).get("disclosure_threshold"),
            "rounding": (res.get("parameters") or {}).get("rounding"),
        })
    cols = ["evaluation", "la_code", "la_name", "referrals", "rereferrals", "rate", "year", "created", "threshold",
            "rounding"]
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    df = df.sort_values("created").drop_duplicates("la_code", keep="last")
    return df.sort_values("la_code").reset_index(drop=True)


@dataclass
class Reconciliation:
    """A council's own DfE measure beside the figure DfE published for it."""

    la_code: str
    year: int | None
    computed: dict
    published: dict
    difference_points: float | None
    p_value: float | None

    def to_dict(self) -> dict:
        return {"la_code": self.la_code, "year": self.year, "computed": self.computed, "published": self.published,
                "difference_points": self.difference_points, "p_value": self.p_value}

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"source": "Computed from this extract", **{k: self.computed["display"][k] for k in ("referrals", "rereferrals", "rate")}},
            {"source": f"Published by DfE ({self.year})" if self.year else "Published by DfE",
             **{k: self.published["display"][k] for k in ("referrals", "rereferrals", "rate")}},
        ])

    def sentence(self) -> str:
        name = reference.council_name(self.la_code)
        year = f" for the year to 31 March {self.year}" if self.year else ""
        if self.difference_points is None:
            if self.published.get("rate") is None:
                why = {"c": "suppressed", "x": "not available", "u": "of low reliability"}.get(
                    self.published["display"]["rate"], "not available")
                return f"{name}: DfE's published rate{year} is {why}, so there is nothing to compare with."
            return (f"{name}: the rate computed from the extract{year} is hidden because it rests on small numbers, "
                    f"so it is not compared with DfE's published {self.published['display']['rate']}.")
        agree = "consistent with" if (self.p_value is None or self.p_value >= 0.05) else "different from"
        return (f"{name}: computed {self.computed['display']['rate']} against DfE's published "
                f"{self.published['display']['rate']} ({self.difference_points:+.1f} percentage points), "
                f"{agree} the published figure allowing for chance.")


def reconcile(la_code: str, computed: dict, year: int | None = None, threshold: int = DISCLOSURE_THRESHOLD,
              rounding: int | None = None) -> Reconciliation:
    """Compare a council's computed measure ({"referrals", "rereferrals", "rate"[, "year"]}) with DfE's.

    The year is the computed measure's own "year" if it has one, else DfE's latest. The
    p-value is a two-proportion z-test treating the two as independent samples; a large
    difference usually means the extract covers different years or children, not an error
    in DfE's figure. Computed figures pass disclosure control before display (with the council's
    own ``rounding``, the counts, the rate and the difference are those of the rounded counts).
    """
    year = year or computed.get("year") or latest_year()
    pub_all = published_rates()
    pub = pub_all.loc[(pub_all["la_code"] == la_code) & (pub_all["year"] == int(year))]
    refs, rerefs = computed.get("referrals"), computed.get("rereferrals")
    if refs is None or rerefs is None:
        raise InputError(f"Council {la_code}: the computed DfE measure needs 'referrals' and 'rereferrals'.")
    shown = safe_rate(rerefs, refs, threshold, rounding=rounding)
    if rounding:
        refs, rerefs = round_count(refs, rounding), round_count(rerefs, rounding)
    comp = {"referrals": refs, "rereferrals": rerefs, "rate": shown.rate,
            "display": {"referrals": f"{int(refs):,}" if refs >= threshold or refs == 0 else "c",
                        "rereferrals": f"{int(rerefs):,}" if rerefs >= threshold or rerefs == 0 else "c",
                        "rate": shown.display}}
    if pub.empty:
        published = {"referrals": None, "rereferrals": None, "rate": None,
                     "display": {"referrals": "x", "rereferrals": "x", "rate": "x"}}
        return Reconciliation(la_code, int(year), comp, published, None, None)
    p = pub.iloc[0]
    published = {
        "referrals": None if pd.isna(p["referrals"]) else float(p["referrals"]),
        "rereferrals": None if pd.isna(p["rereferrals"]) else float(p["rereferrals"]),
        "rate": None if pd.isna(p["rate"]) else float(p["rate"]),
        "display": {"referrals": display_value(p["referrals"], p["referrals_symbol"], "count"),
                    "rereferrals": display_value(p["rereferrals"], p["rereferrals_symbol"], "count"),
                    "rate": display_value(p["rate"], p["rate_symbol"], "rate")},
    }
    if published["rate"] is None or shown.rate is None:
        return Reconciliation(la_code, int(year), comp, published, None, None)
    diff = 100 * (shown.rate - published["rate"])
    p_value = None
    if published["referrals"]:
        n1, n2 = refs, published["referrals"]
        pooled = (rerefs + published["rate"] * n2) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)) if 0 < pooled < 1 else 0.0
        p_value = float(2 * stats.norm.sf(abs(shown.rate - published["rate"]) / se)) if se > 0 else None
    return Reconciliation(la_code, int(year), comp, published, diff, p_value)


# --- a sortable table that works without JavaScript --------------------------------------------


def sortable_table_html(df: pd.DataFrame, *, caption: str, sort_keys: dict[str, pd.Series] | None = None,
                        table_id: str = "key-figures", note: str = "") -> str:
    """An HTML table whose column headers sort it (tiny inline script); without JS it is a plain table.

    ``sort_keys`` gives, per column, the value to sort by (numbers behind "12.3%"; blank for
    DfE symbols, which sort last). Cell text is escaped.
    """
    sort_keys = sort_keys or {}
    head = "".join(f'<th scope="col">{html.escape(str(c))}</th>' for c in df.columns)
    body = []
    for i in range(len(df)):
        cells = []
        for c in df.columns:
            text = html.escape("" if pd.isna(df[c].iat[i]) else str(df[c].iat[i]))
            key = sort_keys.get(c)
            attr = ""
            if key is not None:
                k = key.iat[i]
                attr = f' data-sort="{"" if pd.isna(k) else float(k)}"'
                cells.append(f'<td class="num"{attr}>{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    script = resources.files("insightlib").joinpath("templates", "sortable.js").read_text(encoding="utf-8")
    note_html = f'<p class="table-note">{html.escape(note)}</p>' if note else ""
    return (f'<div class="table-wrap"><table class="sortable" id="{html.escape(table_id)}">'
            f"<caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>{note_html}\n<script>{script}</script>")


# --- the whole summary page ------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    title: str
    alt: str
    png: bytes
    png_narrow: bytes | None = None  # the same chart drawn narrow, for phones

    def data_uri(self, narrow: bool = False) -> str:
        data = self.png_narrow if narrow and self.png_narrow else self.png
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@dataclass
class Section:
    """One part of the page: a heading (none for the opening), paragraphs, figures, tables."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)  # (heading, html)


@dataclass
class NationalSummary:
    """Everything on the leaders' page, in reading order: sections of paragraphs, figures (with alt
    text) and HTML tables."""

    year: int
    sections: list[Section]
    computed: pd.DataFrame
    published: FunnelResult
    computed_funnel: FunnelResult | None
    reconciliations: list[Reconciliation]

    @property
    def paragraphs(self) -> list[str]:
        return [p for sec in self.sections for p in sec.paragraphs]

    @property
    def figures(self) -> list[Figure]:
        return [f for sec in self.sections for f in sec.figures]

    @property
    def tables(self) -> list[tuple[str, str]]:
        return [t for sec in self.sections for t in sec.tables]

    def to_dict(self) -> dict:
        return {
            "year": self.year,
            "published_funnel": self.published.to_dict(),
            "computed_funnel": None if self.computed_funnel is None else self.computed_funnel.to_dict(),
            "reconciliations": [r.to_dict() for r in self.reconciliations],
        }

    def html_fragment(self, image_src=None) -> str:
        """The page body. ``image_src(figure, narrow)`` gives each image's src (default: embedded data
        URI); phones get the narrow drawing through a <picture> source."""
        image_src = image_src or (lambda f, narrow=False: f.data_uri(narrow))
        parts = []
        for sec in self.sections:
            if sec.heading:
                parts.append(f"<h2>{html.escape(sec.heading)}</h2>")
            parts += [f"<p>{html.escape(p)}</p>" for p in sec.paragraphs]
            for fig in sec.figures:
                source = ""
                if fig.png_narrow:
                    source = f'<source media="(max-width: 40rem)" srcset="{html.escape(image_src(fig, True))}">'
                parts.append(f'<figure><a class="figure-link" href="{html.escape(image_src(fig, False))}" '
                             f'title="Open the chart full size"><picture>{source}'
                             f'<img src="{html.escape(image_src(fig, False))}" alt="{html.escape(fig.alt)}"></picture></a>'
                             f"<figcaption>{html.escape(fig.title)}</figcaption></figure>")
            for _heading, table_html in sec.tables:
                parts.append(table_html)
        return "\n".join(parts)


def _figure(name: str, make, alt: str) -> Figure:
    """``make(width)`` draws the chart; it is drawn wide for screens and print, narrow for phones."""
    import matplotlib.pyplot as plt

    fig = make(7.5)
    title = " ".join(fig._suptitle.get_text().split()) if getattr(fig, "_suptitle", None) else name
    png = charts.to_png(fig)
    plt.close(fig)
    narrow = make(4.8)
    png_narrow = charts.to_png(narrow)
    plt.close(narrow)
    return Figure(name=name, title=title, alt=alt, png=png, png_narrow=png_narrow)


def build_national_summary(reports_dir: str | Path, year: int | None = None, threshold: int = DISCLOSURE_THRESHOLD,
                           trend_councils: int = 12, label_councils: int = 12,
                           settings: dict | None = None) -> NationalSummary:
    """The leaders' page from every council's results.json plus DfE's published rates.

    Reading order: England and the published funnel; the councils in these reports (their
    computed measure beside DfE's published figure, and their own funnel); trends 2013 to
    2025 for up to ``trend_councils`` of them; every council's published figures. ``settings``
    ({la_code: (threshold, rounding)}) is each council's strictest disclosure control on the site.
    """
    year = year or latest_year()
    computed = collect_dfe_measures(reports_dir)
    if settings and not computed.empty:
        # the site shows each council at its strictest setting across evaluations (site.one_disclosure_per_council)
        strict = [settings.get(la) for la in computed["la_code"]]
        computed["threshold"] = [max(int(t), s[0]) if s and pd.notna(t) else (s[0] if s else t)
                                 for t, s in zip(computed["threshold"], strict)]
        computed["rounding"] = [(s[1] or None) if s else r for r, s in zip(computed["rounding"], strict)]
    codes = computed["la_code"].tolist()
    pub_funnel = published_funnel(year, highlight=[c for c in codes if c in set(published_rates(year)["la_code"])][:label_councils])
    eng = england_rate(year)
    counts = pub_funnel.points["band"].value_counts()
    plain_out = len(published_funnel(year, overdispersion=False).outliers(0.998))
    opening = Section("", paragraphs=[
        f"In the year to 31 March {year}, {100 * eng:.1f}% of referrals to children's social care in England came "
        f"within 12 months of a previous referral (DfE, Characteristics of children in need). The funnel plot places "
        f"each of the {len(pub_funnel.points)} councils with a published rate against that figure: councils inside the "
        f"funnel differ from England by no more than chance would explain for their number of referrals "
        f"(95% and 99.8% control limits).",
        f"Councils differ by far more than chance alone (how they record re-referrals, their thresholds, their "
        f"populations): with plain binomial limits {plain_out} of them would lie outside the 99.8% funnel. The limits "
        f"shown are therefore widened by the over-dispersion factor ({pub_funnel.phi:.1f}, Spiegelhalter 2005). "
        f"{int(counts.get(BANDS[0], 0))} councils lie above the widened 99.8% limit and "
        f"{int(counts.get(BANDS[4], 0))} below it. A council outside the funnel is a question to ask, not a verdict.",
    ], figures=[_figure("published_funnel", lambda w: pub_funnel.plot(width=w), pub_funnel.alt_text())])
    sections = [opening]
    computed_funnel = None
    reconciliations: list[Reconciliation] = []
    if not computed.empty:
        mine = Section("Councils in these reports: their own figure beside DfE's")
        for r in computed.itertuples():
            if pd.isna(r.referrals) or pd.isna(r.rereferrals):
                continue
            own = r.threshold if "threshold" in computed and pd.notna(r.threshold) else threshold
            reconciliations.append(reconcile(r.la_code, {"referrals": r.referrals, "rereferrals": r.rereferrals,
                                                         "year": None if pd.isna(r.year) else int(r.year)},
                                             threshold=max(int(threshold), int(own)),
                                             rounding=_rounding_of(getattr(r, "rounding", None))))
        funnels = {year: pub_funnel}
        reconciliation_table = None

        def band_in_year(la_code: str, row_year) -> str:
            """The council's place in the published funnel of the row's own year, never another year's."""
            if row_year is None or pd.isna(row_year):
                return "no year to compare"
            row_year = int(row_year)
            if row_year not in set(published_rates()["year"]):
                return f"not published for {row_year}"
            if row_year not in funnels:
                funnels[row_year] = published_funnel(row_year)
            return funnels[row_year].band_of(la_code)

        if reconciliations:
            mine.paragraphs.append(
                "Each council's 12-month re-referral rate computed from its own extract (DfE's measure: referrals in "
                "the year to 31 March that came within 12 months of a previous referral of the same child) beside the "
                "figure DfE published for it. They should agree closely; a large difference usually means the extract "
                "covers different years or children, not an error in either figure.")
            mine.paragraphs.append(" ".join(r.sentence() for r in reconciliations))
            rec = pd.DataFrame([{
                "Council": reference.council_name(r.la_code),
                "Computed rate": r.computed["display"]["rate"],
                "Published rate": r.published["display"]["rate"],
                "Difference (points)": "" if r.difference_points is None else f"{r.difference_points:+.1f}",
                "Year": r.year,
                "Code": r.la_code,
                "Referrals (computed)": r.computed["display"]["referrals"],
                "Referrals (published)": r.published["display"]["referrals"],
                "Against England, same year (published)": band_in_year(r.la_code, r.year),
            } for r in reconciliations])
            keys = {
                "Computed rate": pd.Series([r.computed["rate"] for r in reconciliations], dtype=float),
                "Published rate": pd.Series([r.published["rate"] for r in reconciliations], dtype=float),
                "Difference (points)": pd.Series([r.difference_points for r in reconciliations], dtype=float),
                "Referrals (computed)": pd.Series([r.computed["referrals"] if r.computed["display"]["referrals"] != "c"
                                                   else None for r in reconciliations], dtype=float),
                "Referrals (published)": pd.Series([r.published["referrals"] for r in reconciliations], dtype=float),
            }
            reconciliation_table = (rec, keys)
        safe = computed.dropna(subset=["referrals", "rereferrals"])
        thresholds = [max(int(threshold), int(t)) if "threshold" in safe and pd.notna(t) else threshold
                      for t in (safe["threshold"] if "threshold" in safe else [None] * len(safe))]
        # a council that published rounded counts is placed by its rounded counts here too
        roundings = [_rounding_of(v) for v in (safe["rounding"] if "rounding" in safe else [None] * len(safe))]
        shown = [safe_rate(r, n, t, rounding=k)
                 for r, n, t, k in zip(safe["rereferrals"], safe["referrals"], thresholds, roundings)]
        safe = safe.assign(referrals=[round_count(n, k) for n, k in zip(safe["referrals"], roundings)],
                           rereferrals=[round_count(r, k) for r, k in zip(safe["rereferrals"], roundings)])
        plot_rows = safe.loc[[not s.suppressed and s.rate is not None for s in shown]]
        # one funnel is drawn around one year's England rate: the councils whose figure is for that year
        # (the latest among them); any other year's figures are named, not set against the wrong year
        row_years = pd.to_numeric(plot_rows["year"], errors="coerce")
        funnel_year = int(row_years.max()) if row_years.notna().any() else year
        if funnel_year not in set(published_rates()["year"]):
            funnel_year = year if row_years.isna().all() else None
        other = plot_rows.loc[row_years.ne(funnel_year) if funnel_year is not None else row_years.notna()]
        plot_rows = plot_rows.loc[row_years.eq(funnel_year) | (row_years.isna() & (funnel_year == year))]
        if len(other):
            names = sorted(reference.council_name(c) for c in other["la_code"])
            listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
            mine.paragraphs.append(
                (f"The funnel below compares councils' figures for the year to 31 March {funnel_year} with England's "
                 f"rate for that year. " if funnel_year is not None and len(plot_rows) else "")
                + f"{listed} {'has' if len(names) == 1 else 'have'} a figure for another year, so "
                f"{'it is' if len(names) == 1 else 'they are'} compared with England in the table above (same year), "
                "not in the funnel.")
        if len(plot_rows):
            if funnel_year not in funnels:
                funnels[funnel_year] = published_funnel(funnel_year)
            # the same widened limits as every council's published funnel of that year: a handful of councils
            # cannot estimate over-dispersion, and binomial limits here would call "outside" what the
            # published funnel (and the table) calls within
            phi = funnels[funnel_year].phi
            computed_funnel = funnel(
                plot_rows, target=england_rate(funnel_year), highlight=plot_rows["la_code"].tolist()[:label_councils],
                year=funnel_year, phi=phi,
                title=f"Councils' own 12-month re-referral rates from their extracts, against England, {funnel_year - 1} to {funnel_year}",
            )
            computed_funnel.measure = "computed 12-month re-referral rate"
            mine.paragraphs.append(
                f"The funnel of the councils' own figures uses the same limits as every council's published funnel for "
                f"{funnel_year} (binomial limits widened by its over-dispersion factor, {phi:.1f}), so a council's place "
                "in it reads the same way; the table's last column gives each council's place.")
            mine.figures.append(_figure("computed_funnel", lambda w: computed_funnel.plot(width=w),
                                        computed_funnel.alt_text()))
        if reconciliation_table is not None:
            rec, keys = reconciliation_table
            rec["Own figure in the funnel below"] = [
                computed_funnel.band_of(r.la_code) if computed_funnel is not None
                and r.la_code in set(computed_funnel.points["la_code"]) else "not in the funnel"
                for r in reconciliations]
            mine.tables.append(("Computed against published", sortable_table_html(
                rec, caption="Computed against published", sort_keys=keys, table_id="reconciliation",
                note="Select a column heading to sort. c: suppressed (a small number); x: not available; "
                     "u: low reliability. Difference: computed minus published, in percentage points. "
                     "Both places against England use the same widened limits.")))
        sections.append(mine)
    if codes:
        trends = Section(f"Trends, {int(published_rates()['year'].min())} to {latest_year()}", paragraphs=[
            "Each council's published rate by year beside England and the median of its ten statistical neighbours. "
            "Gaps are years DfE did not publish a figure (marked c, x or u)."])
        have = set(published_rates()["la_code"])
        for code in [c for c in codes if c in have][:trend_councils]:
            try:
                fig_alt = trend_plot(code)
            except InputError:
                continue
            import matplotlib.pyplot as plt

            plt.close(fig_alt[0])
            trends.figures.append(_figure(f"trend_{code}", lambda w, c=code: trend_plot(c, width=w)[0], fig_alt[1]))
        if trends.figures:
            sections.append(trends)
    sections.append(deprivation_section())
    pub = published_rates(year).merge(pub_funnel.points[["la_code", "band"]], on="la_code", how="left")
    pub["band"] = pub["band"].fillna("not published")
    table = pd.DataFrame({
        "Council": pub["la_name"],
        "Region": pub["region"],
        "Referrals": [display_value(v, s, "count") for v, s in zip(pub["referrals"], pub["referrals_symbol"])],
        "Re-referrals": [display_value(v, s, "count") for v, s in zip(pub["rereferrals"], pub["rereferrals_symbol"])],
        "Rate": [display_value(v, s, "rate") for v, s in zip(pub["rate"], pub["rate_symbol"])],
        "Against England": pub["band"],
    })
    keys = {"Referrals": pub["referrals"], "Re-referrals": pub["rereferrals"], "Rate": pub["rate"]}
    sections.append(Section(f"Every council's published figures, {year}", tables=[(
        f"Every council's published figures, {year}",
        sortable_table_html(table, caption=f"DfE's published 12-month re-referral figures, year to 31 March {year}",
                            sort_keys=keys, table_id="published",
                            note="Select a column heading to sort. c: suppressed; x: not available; u: low reliability "
                                 "(DfE's symbols, never zero). Against England: the council's place in the funnel above."))]))
    return NationalSummary(year=year, sections=sections, computed=computed, published=pub_funnel,
                           computed_funnel=computed_funnel, reconciliations=reconciliations)


def deprivation_section() -> Section:
    """Children in need per 10,000 against what each council's deprivation predicts (docs/practice.md)."""
    from insightlib.analyses.published_practice import children_in_need_funnel
    from insightlib.report.practice import FUNNEL_TITLE, deprivation_funnel_figure

    f = children_in_need_funnel()
    t = f.table
    n_out = t["verdict"].str.startswith(("above", "below")).sum()
    year = t.attrs.get("year")
    table = pd.DataFrame({"Council": t["la_name"], "Per 10,000 children": t["rate"].round(0).astype(int),
                          "Expected for its deprivation": t["expected_rate"].round(0).astype(int),
                          "Observed / expected": t["ratio"].round(2), "Against its deprivation": t["verdict"]})
    return Section(f"Children in need for each council's deprivation, {year}", paragraphs=[
        f"Children in need at 31 March {year} per 10,000 children, against the rate each council's deprivation "
        f"(IDACI 2019) predicts, so that a council sees whether it is high for its deprivation, not merely high. "
        f"All {len(t)} councils are in it; {n_out} lie outside the 95% limits, which allow for councils differing "
        f"by more than chance (over-dispersion, Spiegelhalter 2005)."],
        figures=[_figure("deprivation_funnel", lambda w: deprivation_funnel_figure(f, width=w)[0],
                         deprivation_funnel_figure(f)[1])],
        tables=[(FUNNEL_TITLE, sortable_table_html(
            table, caption=f"Children in need per 10,000 against deprivation, {year} (published DfE, ONS, MHCLG data)",
            table_id="deprivation", note="Select a column heading to sort."))])


def _councils(n: int) -> str:
    return {0: "No council", 1: "One council"}.get(n, f"{n} councils")
