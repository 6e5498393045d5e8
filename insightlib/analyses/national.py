"""The national picture for leaders: where does each council's re-referral rate stand against England?

Two sources, never mixed in one chart:

* the councils' own computed DfE measure (``dfe_measure`` in each council's results.json:
  ``{"rate", "referrals", "rereferrals"}``, optionally ``"year"``), and
* DfE's published rates for all 153 councils, 2013 to 2025 (``reference.published_rereferral_rates``),
  with DfE's symbols (c suppressed, x not available, u low reliability) shown as such,
  never as zero.

This module chooses the funnels, the councils and the comparisons; the funnels' statistics
(Spiegelhalter's exact binomial limits, over-dispersion) are stats/funnel.py, the page's words,
tables and charts report/national.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.errors import InputError
from insightlib.report import national as page
from insightlib.report.disclosure import round_count, safe_rate
from insightlib.stats.funnel import FunnelResult, funnel
from insightlib.stats.rates import two_proportion_p_value


def published_funnel(year: int | None = None, overdispersion: bool = True, **kw) -> FunnelResult:
    """The funnel of DfE's published rates for one year (latest by default) around England's rate.

    Councils' published rates vary far more than binomial chance allows (the over-dispersion
    factor is about 27 in 2025), so plain binomial limits put two councils in three outside
    the funnel; by default the limits are widened for over-dispersion (``overdispersion=False``
    gives the plain exact binomial limits).
    """
    year = year or reference.latest_published_year()
    pub = reference.published_rereferral_rates(year)
    return funnel(pub, target=reference.england_rereferral_rate(year), year=year, overdispersion=overdispersion, **kw)


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
        rows.append(
            {
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
            }
        )
    cols = [
        "evaluation",
        "la_code",
        "la_name",
        "referrals",
        "rereferrals",
        "rate",
        "year",
        "created",
        "threshold",
        "rounding",
    ]
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    df = df.sort_values("created").drop_duplicates("la_code", keep="last")
    return df.sort_values("la_code").reset_index(drop=True)


@dataclass
class Reconciliation:
    """A council's own DfE measure beside the figure DfE published for it (report/national says it in words)."""

    la_code: str
    year: int | None
    computed: dict
    published: dict
    difference_points: float | None
    p_value: float | None

    def to_dict(self) -> dict:
        return {
            "la_code": self.la_code,
            "year": self.year,
            "computed": self.computed,
            "published": self.published,
            "difference_points": self.difference_points,
            "p_value": self.p_value,
        }


def reconcile(
    la_code: str,
    computed: dict,
    year: int | None = None,
    threshold: int = DISCLOSURE_THRESHOLD,
    rounding: int | None = None,
) -> Reconciliation:
    """Compare a council's computed measure ({"referrals", "rereferrals", "rate"[, "year"]}) with DfE's.

    The year is the computed measure's own "year" if it has one, else DfE's latest. The
    p-value is a two-proportion z-test treating the two as independent samples; a large
    difference usually means the extract covers different years or children, not an error
    in DfE's figure. Computed figures pass disclosure control before display (with the council's
    own ``rounding``, the counts, the rate and the difference are those of the rounded counts).
    """
    year = year or computed.get("year") or reference.latest_published_year()
    pub_all = reference.published_rereferral_rates()
    pub = pub_all.loc[(pub_all["la_code"] == la_code) & (pub_all["year"] == int(year))]
    refs, rerefs = computed.get("referrals"), computed.get("rereferrals")
    if refs is None or rerefs is None:
        raise InputError(f"Council {la_code}: the computed DfE measure needs 'referrals' and 'rereferrals'.")
    shown = safe_rate(rerefs, refs, threshold, rounding=rounding)
    if rounding:
        refs, rerefs = round_count(refs, rounding), round_count(rerefs, rounding)
    comp = {
        "referrals": refs,
        "rereferrals": rerefs,
        "rate": shown.rate,
        "display": {
            "referrals": f"{int(refs):,}" if refs >= threshold or refs == 0 else "c",
            "rereferrals": f"{int(rerefs):,}" if rerefs >= threshold or rerefs == 0 else "c",
            "rate": shown.display,
        },
    }
    if pub.empty:
        published = {
            "referrals": None,
            "rereferrals": None,
            "rate": None,
            "display": {"referrals": "x", "rereferrals": "x", "rate": "x"},
        }
        return Reconciliation(la_code, int(year), comp, published, None, None)
    published = _published_figure(pub.iloc[0])
    if published["rate"] is None or shown.rate is None:
        return Reconciliation(la_code, int(year), comp, published, None, None)
    diff = 100 * (shown.rate - published["rate"])
    p_value = None
    if published["referrals"]:
        p_value = two_proportion_p_value(rerefs, refs, shown.rate, published["rate"], published["referrals"])
    return Reconciliation(la_code, int(year), comp, published, diff, p_value)


def _published_figure(p: pd.Series) -> dict:
    """One council-year of DfE's published figures: numbers (None where a symbol) and their display."""
    return {
        "referrals": None if pd.isna(p["referrals"]) else float(p["referrals"]),
        "rereferrals": None if pd.isna(p["rereferrals"]) else float(p["rereferrals"]),
        "rate": None if pd.isna(p["rate"]) else float(p["rate"]),
        "display": {
            "referrals": page.display_value(p["referrals"], p["referrals_symbol"], "count"),
            "rereferrals": page.display_value(p["rereferrals"], p["rereferrals_symbol"], "count"),
            "rate": page.display_value(p["rate"], p["rate_symbol"], "rate"),
        },
    }


# --- the whole summary page ------------------------------------------------------------------


def build_national_summary(
    reports_dir: str | Path,
    year: int | None = None,
    threshold: int = DISCLOSURE_THRESHOLD,
    trend_councils: int = 12,
    label_councils: int = 12,
    settings: dict | None = None,
) -> page.NationalSummary:
    """The leaders' page from every council's results.json plus DfE's published rates.

    Reading order: England and the published funnel; the councils in these reports (their
    computed measure beside DfE's published figure, and their own funnel); trends 2013 to
    2025 for up to ``trend_councils`` of them; every council's published figures. ``settings``
    ({la_code: (threshold, rounding)}) is each council's strictest disclosure control on the site.
    """
    year = year or reference.latest_published_year()
    computed = _strictest(collect_dfe_measures(reports_dir), settings)
    codes = computed["la_code"].tolist()
    published_codes = set(reference.published_rereferral_rates(year)["la_code"])
    highlight = [c for c in codes if c in published_codes][:label_councils]
    pub_funnel = published_funnel(year)
    plain_out = len(published_funnel(year, overdispersion=False).outliers(0.998))
    sections = [page.opening_section(year, reference.england_rereferral_rate(year), pub_funnel, plain_out, highlight)]
    computed_funnel = None
    reconciliations: list[Reconciliation] = []
    if not computed.empty:
        funnels = {year: pub_funnel}
        mine, computed_funnel, reconciliations = _councils_section(computed, funnels, year, threshold, label_councils)
        sections.append(mine)
    if codes:
        trends = page.trends_section(codes, trend_councils)
        if trends is not None:
            sections.append(trends)
    sections.append(page.deprivation_section())
    sections.append(page.published_table_section(year, pub_funnel))
    return page.NationalSummary(
        year=year,
        sections=sections,
        computed=computed,
        published=pub_funnel,
        computed_funnel=computed_funnel,
        reconciliations=reconciliations,
    )


def _strictest(computed: pd.DataFrame, settings: dict | None) -> pd.DataFrame:
    """Each council's figures at its strictest disclosure setting across the site's evaluations
    (site_reports.one_disclosure_per_council): the larger threshold, that setting's rounding."""
    if settings and not computed.empty:
        strict = [settings.get(la) for la in computed["la_code"]]
        computed["threshold"] = [
            max(int(t), s[0]) if s and pd.notna(t) else (s[0] if s else t)
            for t, s in zip(computed["threshold"], strict)
        ]
        computed["rounding"] = [(s[1] or None) if s else r for r, s in zip(computed["rounding"], strict)]
    return computed


def _councils_section(
    computed: pd.DataFrame, funnels: dict, year: int, threshold: int, label_councils: int
) -> tuple[page.Section, FunnelResult | None, list[Reconciliation]]:
    """The councils in these reports: their figure beside DfE's (a table), and their own funnel.

    ``funnels`` ({year: published funnel}) gains each year it needs."""
    mine = page.Section("Councils in these reports: their own figure beside DfE's")
    reconciliations = _reconciliations(computed, threshold)
    reconciliation_table = None
    if reconciliations:
        mine.paragraphs.append(page.RECONCILIATION_INTRO)
        mine.paragraphs.append(" ".join(page.reconciliation_sentence(r) for r in reconciliations))
        bands = [_band_in_year(funnels, r.la_code, r.year) for r in reconciliations]
        reconciliation_table = page.reconciliation_rows(reconciliations, bands)
    plot_rows, other, funnel_year = _funnel_rows(computed, threshold, year)
    if len(other):
        mine.paragraphs.append(page.other_year_paragraph(other["la_code"], funnel_year, bool(len(plot_rows))))
    computed_funnel = None
    if len(plot_rows):
        if funnel_year not in funnels:
            funnels[funnel_year] = published_funnel(funnel_year)
        # the same widened limits as every council's published funnel of that year: a handful of councils
        # cannot estimate over-dispersion, and binomial limits here would call "outside" what the
        # published funnel (and the table) calls within
        phi = funnels[funnel_year].phi
        highlight = plot_rows["la_code"].tolist()[:label_councils]
        computed_funnel = funnel(
            plot_rows, target=reference.england_rereferral_rate(funnel_year), year=funnel_year, phi=phi
        )
        mine.paragraphs.append(page.computed_funnel_paragraph(funnel_year, phi))
        mine.figures.append(page.computed_funnel_figure(computed_funnel, highlight))
    if reconciliation_table is not None:
        rec, keys = reconciliation_table
        rec["Own figure in the funnel below"] = [
            computed_funnel.band_of(r.la_code)
            if computed_funnel is not None and r.la_code in set(computed_funnel.points["la_code"])
            else "not in the funnel"
            for r in reconciliations
        ]
        mine.tables.append(page.reconciliation_table_html(rec, keys))
    return mine, computed_funnel, reconciliations


def _reconciliations(computed: pd.DataFrame, threshold: int) -> list[Reconciliation]:
    """Each council with both counts reconciled at its own (never a looser) disclosure setting."""
    out = []
    for r in computed.itertuples():
        if pd.isna(r.referrals) or pd.isna(r.rereferrals):
            continue
        own = r.threshold if "threshold" in computed and pd.notna(r.threshold) else threshold
        measure = {
            "referrals": r.referrals,
            "rereferrals": r.rereferrals,
            "year": None if pd.isna(r.year) else int(r.year),
        }
        out.append(
            reconcile(
                r.la_code,
                measure,
                threshold=max(int(threshold), int(own)),
                rounding=_rounding_of(getattr(r, "rounding", None)),
            )
        )
    return out


def _band_in_year(funnels: dict, la_code: str, row_year) -> str:
    """The council's place in the published funnel of the row's own year, never another year's."""
    if row_year is None or pd.isna(row_year):
        return "no year to compare"
    row_year = int(row_year)
    if row_year not in set(reference.published_rereferral_rates()["year"]):
        return f"not published for {row_year}"
    if row_year not in funnels:
        funnels[row_year] = published_funnel(row_year)
    return funnels[row_year].band_of(la_code)


def _funnel_rows(computed: pd.DataFrame, threshold: int, year: int) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    """The councils' figures shown in the computed funnel (counts as published: rounded where the council
    rounds, none hidden by disclosure control), those of another year than the funnel's, and its year."""
    safe = computed.dropna(subset=["referrals", "rereferrals"])
    thresholds = [
        max(int(threshold), int(t)) if "threshold" in safe and pd.notna(t) else threshold
        for t in (safe["threshold"] if "threshold" in safe else [None] * len(safe))
    ]
    # a council that published rounded counts is placed by its rounded counts here too
    roundings = [_rounding_of(v) for v in (safe["rounding"] if "rounding" in safe else [None] * len(safe))]
    shown = [
        safe_rate(r, n, t, rounding=k)
        for r, n, t, k in zip(safe["rereferrals"], safe["referrals"], thresholds, roundings)
    ]
    safe = safe.assign(
        referrals=[round_count(n, k) for n, k in zip(safe["referrals"], roundings)],
        rereferrals=[round_count(r, k) for r, k in zip(safe["rereferrals"], roundings)],
    )
    plot_rows = safe.loc[[not s.suppressed and s.rate is not None for s in shown]]
    # one funnel is drawn around one year's England rate: the councils whose figure is for that year
    # (the latest among them); any other year's figures are named, not set against the wrong year
    row_years = pd.to_numeric(plot_rows["year"], errors="coerce")
    funnel_year = int(row_years.max()) if row_years.notna().any() else year
    if funnel_year not in set(reference.published_rereferral_rates()["year"]):
        funnel_year = year if row_years.isna().all() else None
    other = plot_rows.loc[row_years.ne(funnel_year) if funnel_year is not None else row_years.notna()]
    plot_rows = plot_rows.loc[row_years.eq(funnel_year) | (row_years.isna() & (funnel_year == year))]
    return plot_rows, other, funnel_year
