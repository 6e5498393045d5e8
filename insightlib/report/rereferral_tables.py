"""The re-referral report's tables: shares with intervals, average days out of contact, hazard
ratios, DfE's measure and the counts, each as shown (small counts hidden as "c")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib.report.rereferral_charts import forest_rows
from insightlib.report.labels import GROUPINGS, group_label, term_label
from insightlib.report.words import (
    TOO_FEW,
    first as _first,
    nowrap as _nowrap,
    p_value,
    share as _share,
    when as _when,
    within as _within,
)


def _suppress(table: pd.DataFrame, columns, threshold: int, rounding: int | None) -> pd.DataFrame:
    """Counts of children below the threshold hidden ("c") by insightlib.report.disclosure before display."""
    from insightlib.report.disclosure import suppress_table

    tab = table.copy()
    for col in columns:
        tab[col] = pd.to_numeric(tab[col]).round().astype("int64")
    return suppress_table(tab, columns, threshold, rounding).display


def _for_display(table: pd.DataFrame, corner: str) -> pd.DataFrame:
    """A report table: the row labels as the index (no 0..N column), the corner cell naming them."""
    out = table.copy()
    out.index.name = None
    out.columns.name = corner
    return out


def cox_terms_table(cox) -> pd.DataFrame:
    """The Cox terms with their hazard ratios and the factor in words; the comparison groups as a note."""
    out = cox.terms[["term", "hr", "ci_low", "ci_high", "p_value"]].copy()
    out.insert(1, "factor", [term_label(t) for t in out["term"]])
    ref = ", ".join(f"{GROUPINGS.get(k, k)}: {group_label(k, v)}" for k, v in cox.references.items())
    out.attrs["note"] = f"Compared with: {ref}." if ref else ""
    return out


def survival_table(report, threshold: int | None = None, rounding: int | None = None) -> pd.DataFrame:
    """Share not yet referred again at each horizon (95% interval) by group; "c" where too few to show."""
    threshold = report.threshold if threshold is None else threshold
    sizes = pd.DataFrame({"group": list(report.km.curves), "episodes": [report.km.sizes[g] for g in report.km.curves]})
    # the groups add up to the episodes followed up, which the report states: no group may be worked out
    sizes.loc[len(sizes)] = {"group": "All", "episodes": report.episodes_at_risk}
    shown = _suppress(sizes, ["episodes"], threshold, rounding).iloc[:-1]
    rows = {}
    h_max = max(report.horizons)
    for g, n in zip(shown["group"], shown["episodes"]):
        row = {"Episodes": f"{n:,}" if isinstance(n, (int, np.integer)) else n}
        for h in report.horizons:
            a = report.km.at(g, h)
            ok = report.share_shown(g, h) and n != "c"
            row[f"After {_when(h)}"] = _share(a["survival"], a["ci_low"], a["ci_high"]) if ok else "c"
        a = report.km.at(g, h_max)
        gone = report.km.sizes[g] - (a["at_risk"] or 0)  # no longer followed: bounds how many came back
        row[f"Still followed at {_when(h_max)}"] = (
            f"fewer than {report.min_at_risk}"
            if (a["at_risk"] or 0) < report.min_at_risk
            else "c"
            if report._small(gone)
            else f"{a['at_risk']:,}"
        )
        rows[group_label(report.group_by, g)] = row
    return _for_display(pd.DataFrame.from_dict(rows, orient="index"), report.what.capitalize())


def cumulative_incidence_table(report) -> pd.DataFrame:
    """Share referred again (95% interval), and share whose episode ended another way, by group."""
    if report.cumulative_incidence is None:
        return pd.DataFrame()
    rows = {}
    h_max = max(report.horizons)
    for g in report.cumulative_incidence.curves:
        row = {}
        for h in report.horizons:
            a = report.cumulative_incidence.at(g, h)
            row[f"Within {_when(h)}"] = (
                _share(a["rereferral"], a["ci_low"], a["ci_high"]) if report.share_shown(g, h) else "c"
            )
        a = report.cumulative_incidence.at(g, h_max)
        row[f"Turned 18, died or moved away {_within(h_max)}"] = (
            f"{a['competing']:.1%}" if report.share_shown(g, h_max, "competing") else "c"
        )
        rows[group_label(report.group_by, g)] = row
    return _for_display(pd.DataFrame.from_dict(rows, orient="index"), report.what.capitalize())


def rmst_table(report) -> pd.DataFrame:
    """Average days out of contact within the horizon, and the difference from the largest group."""
    r = report.rmst
    diffs = r.differences.set_index("group")
    rows = {}
    for g in r.groups.itertuples():
        if not (np.isfinite(g.ci_low) and np.isfinite(g.ci_high)) or round(g.ci_low) == round(g.ci_high):
            rows[group_label(report.group_by, g.group)] = {
                f"Average days out of contact in the {_first(r.horizon)}": TOO_FEW,
                "95% interval": "",
                "Difference in days": "" if g.group in diffs.index else "comparison group",
                "95% interval of the difference": "",
            }
            continue
        row = {
            f"Average days out of contact in the {_first(r.horizon)}": f"{g.rmst:.0f}",
            "95% interval": _nowrap(f"{g.ci_low:.0f} to {g.ci_high:.0f}"),
        }
        if g.group in diffs.index:
            d = diffs.loc[g.group]
            row["Difference in days"] = f"{d.difference:+.0f}"
            row["95% interval of the difference"] = _nowrap(f"{d.ci_low:+.0f} to {d.ci_high:+.0f}")
        else:
            row["Difference in days"] = "comparison group"
            row["95% interval of the difference"] = ""
        rows[group_label(report.group_by, g.group)] = row
    return _for_display(pd.DataFrame.from_dict(rows, orient="index"), report.what.capitalize())


def cox_table(report) -> pd.DataFrame:
    """Hazard ratios with 95% intervals in words, one row per factor level."""
    if report.cox is None:
        return pd.DataFrame()
    rows = {}
    for label, i in forest_rows(report.cox):
        if i is None:
            rows[label] = {"Hazard ratio": "", "95% interval": "", "p-value": ""}
            continue
        r = report.cox.terms.iloc[i]
        key = ("\u2003" if label.startswith(" ") else "") + label.strip()
        if not report.cox.estimable(r.term):
            rows[key] = {"Hazard ratio": TOO_FEW, "95% interval": "", "p-value": ""}
            continue
        rows[key] = {
            "Hazard ratio": f"{r.hr:.2f}",
            "95% interval": _nowrap(f"{r.ci_low:.2f} to {r.ci_high:.2f}"),
            "p-value": p_value(r.p_value),
        }
    return _for_display(pd.DataFrame.from_dict(rows, orient="index"), "Factor")


def dfe_table(
    report, threshold: int | None = None, rounding: int | None = None, complete_only: bool = True
) -> pd.DataFrame:
    """DfE's measure by reporting year beside the council's published figure (full years only by default);
    the figures are those of ``dfe_published`` (the headline and the national page use the same)."""
    d = report.dfe_published(complete_only)
    tab = pd.DataFrame(
        {
            "Year to 31 March": d["year"].astype(int).to_numpy(),
            "Referrals": d["referrals"].to_numpy(),
            "Re-referrals within 12 months": d["rereferrals"].to_numpy(),
            "Rate": d["rate_display"].to_numpy(),
            "Published rate": [("" if pd.isna(v) else f"{v:.1%}") for v in d["published_rate"]],
        }
    )
    if not complete_only:
        tab["Full year in the extract"] = np.where(d["complete"], "yes", "no")
    if tab.empty:
        return _for_display(tab.set_index("Year to 31 March"), "Year to 31 March")
    out = tab
    for col in ("Referrals", "Re-referrals within 12 months"):
        out[col] = [f"{v:,}" if isinstance(v, (int, np.integer)) else v for v in out[col]]
    return _for_display(out.set_index("Year to 31 March"), "Year to 31 March")


def counts_table(report, threshold: int | None = None, rounding: int | None = None) -> pd.DataFrame:
    """What happened to every referral on the way to episodes, small counts suppressed."""
    words = {
        "referrals": "Referrals in the extract",
        "referrals_after_extract": "Referrals dated after the extract (left out)",
        "closures_after_extract": "Closed after the extract date (treated as open)",
        "nfa_closed_at_referral": "No further action, closed on the referral date",
        "merged_overlapping": "Referrals joined to an overlapping one",
        "open_cases": "Cases open at the extract (no episode)",
        "episodes": "Episodes (closed periods of contact)",
        "not_at_risk_died": "Closed because the child died (not at risk)",
        "not_at_risk_transferred": "Closed on transfer to another council (not at risk)",
        "not_at_risk_adult": "Closed at 18 or over (not at risk)",
        "closed_on_extract_date": "Closed on the extract date (no follow-up)",
        "unknown_child": "Referrals of a child not in the children table",
    }
    words["followed_up"] = "Episodes followed up"
    shown = report.published_counts()
    out = pd.DataFrame([{"what": words.get(k, k), "count": v} for k, v in shown.items()])
    out["count"] = [f"{v:,}" if isinstance(v, (int, np.integer)) else v for v in out["count"]]
    return _for_display(out.set_index("what").rename(columns={"count": "Count"}), "What happened")
