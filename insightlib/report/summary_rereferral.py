"""The re-referral analysis's answer across councils: each council's DfE re-referral rate in its latest
complete year, with a Wilson interval, against England's published rate."""

from __future__ import annotations

from insightlib import reference
from insightlib.report import disclosure
from insightlib.stats import rates
from insightlib.report.summary_table import Row, Summary, joined, rounding_of, summary_table, threshold_of

#: How the rates were computed (the method paragraph for an analyst).
METHOD = (
    "DfE's measure computed from each council's extract: referrals in the year to 31 March that "
    "came within 12 months of a previous referral of the same child, with a 95% Wilson interval; "
    "England's rate is DfE's published figure. Rates resting on fewer children than the "
    "disclosure threshold are not shown."
)


def _wilson(r: int, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of r in n (stats.rates.proportion)."""
    ci = rates.proportion([r], [n])
    return float(ci["ci_low"].iloc[0]), float(ci["ci_high"].iloc[0])


def _council_row(code: str, label: str, res: dict, rounding: int | None) -> tuple[Row, int | None]:
    """One council's rate in its latest complete year (the rate of the rounded counts where the reports
    round), hidden where it rests on fewer children than its threshold; and that year."""
    measure = res.get("dfe_measure") or {}
    complete = [
        (int(y), v) for y, v in measure.items() if str(y).isdigit() and isinstance(v, dict) and v.get("complete", True)
    ]
    if not complete:
        return Row(label, code, None, None, None, shown=False, note="no complete year"), None
    year, v = max(complete)
    n, r = int(v.get("referrals") or 0), int(v.get("rereferrals") or 0)
    safe = disclosure.safe_rate(r, n, threshold_of(res))  # hidden or not is decided on the true counts
    ok = safe.rate is not None
    if ok and rounding:  # a rate beside rounded counts is the rate of the rounded counts
        rn, rr = rounding * round(n / rounding), rounding * round(r / rounding)
        ok = rn > 0
        safe = disclosure.SafeRate(rr / rn if ok else None, "", not ok, "")
        lo, hi = _wilson(rr, rn) if ok else (None, None)
    else:
        lo, hi = _wilson(r, n) if ok else (None, None)
    row = Row(
        label,
        code,
        100 * safe.rate if ok else None,
        100 * lo if ok else None,
        100 * hi if ok else None,
        shown=ok,
        note="" if ok else safe.display,
        detail=str(year),
        counts={"Re-referrals": r, "Referrals": n},
    )
    return row, year


def rereferral_summary(reports) -> Summary | None:
    rows, thresholds, years = [], [], set()
    for code, label, res in reports:
        thresholds.append(threshold_of(res))
        row, year = _council_row(code, label, res, rounding_of(reports))
        rows.append(row)
        if year is not None:
            years.add(year)
    shown = [r for r in rows if r.shown]
    if not shown:
        return None
    year = max(years)
    published_years = set(reference.published_rereferral_rates()["year"])
    england = 100 * reference.england_rereferral_rate(year) if year in published_years else None  # DfE's
    sentence, paragraphs = _words(shown, years, england)
    table, note = summary_table(
        rows,
        measure_col="Rate (%)",
        thresholds=thresholds,
        count_cols=["Re-referrals", "Referrals"],
        total="Referrals",
        signed=False,
        detail_col="Year",
        rounding=rounding_of(reports),
    )
    return Summary(
        "rereferral",
        sentence,
        paragraphs,
        rows,
        table,
        note,
        "Referrals within 12 months of a previous referral, latest complete year (%)",
        reference_value=england,
        reference_label=f"England {year}" if england is not None else "",
        method=[METHOD],
    )


def _words(shown: list[Row], years: set, england: float | None) -> tuple[str, list[str]]:
    """The sentence (the range of the councils' rates against England's) and the paragraph of who is clearly
    above or below England."""
    year = max(years)
    lo = min(shown, key=lambda r: r.estimate)
    hi = max(shown, key=lambda r: r.estimate)
    sentence = (
        f"In the year to 31 March {year}, between {lo.estimate:.0f}% ({lo.label}) and {hi.estimate:.0f}% "
        f"({hi.label}) of referrals in the {len(shown)} councils came within 12 months of a previous referral"
        + (f", against {england:.1f}% in England." if england is not None else ".")
    )
    if len(years) > 1:
        sentence = sentence[:-1] + " (some councils' latest complete year is earlier; the table says which)."
    paragraphs = []
    if england is not None:
        above = [r.label for r in shown if r.ci_low > england]
        below = [r.label for r in shown if r.ci_high < england]
        paragraphs.append(
            (
                f"Clearly above England's rate: {joined(above)}. "
                if above
                else "No council is clearly above England's rate. "
            )
            + (f"Clearly below it: {joined(below)}." if below else "No council is clearly below it.")
        )
    paragraphs.append("Each council's report shows how soon children come back after their case closes, and for whom.")
    return sentence, paragraphs
