"""The re-referral report's sentences on the Cox model, DfE's measure and the average days out of
contact, its caveats and definitions: functions of a ReReferralReport (report/rereferral.py), whose
methods of the same names call them. Every figure they word has passed the report's disclosure rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.report.labels import GROUPINGS, OTHER, _who, group_label, term_label
from insightlib.report.words import first as _first, p_equals as _p
from insightlib.stats.multiple_testing import holm


def england_comparison(report, year: int | None = None) -> tuple[float | None, str]:
    """England's rate for the council's own year (DfE's measure), in words; said plainly when there is none.

    The comparison is always like with like: the year to 31 March of the council's figure. Where DfE
    has published no England figure for that year, no other year's rate is put beside it as if it were.
    """
    if year is None:
        last = report._latest_dfe()
        year = None if last is None else int(last.year)
    years = sorted(int(y) for y in reference.published_rereferral_rates()["year"].unique())
    if year is None:
        return None, (
            "The extract has no complete year of DfE's measure, so the council's rate is not compared with England's."
        )
    if year not in years:
        return None, (
            f"DfE has published no England rate for the year to 31 March {year} (its figures run "
            f"from {years[0]} to {years[-1]}), so the council's {year} rate is not compared with England's."
        )
    rate = reference.england_rereferral_rate(year)
    return rate, f"England: {rate:.1%} in the year to 31 March {year}, the same year as the council's figure."


def dfe_sentence(report) -> str | None:
    last = report._latest_dfe()
    if last is None:
        return None
    year = int(last.year)
    england, words = england_comparison(report, year)
    if last.rate is None or pd.isna(last.rate):
        text = (
            f"In the year to 31 March {year}, the council's share of referrals that came within 12 months of "
            f"a previous referral (DfE's published measure) rests on fewer than {report.threshold} children, so "
            f"it is not shown"
        )
    else:
        text = (
            f"In the year to 31 March {year}, {last.rate_display} of the council's referrals came "
            f"within 12 months of a previous referral (DfE's published measure)"
        )
    hidden = last.rate is None or pd.isna(last.rate)
    if england is None:
        text += f". {words}"
    elif hidden:
        text += f"; England's rate that year was {england:.1%}."
    else:
        text += f", against England's rate of {england:.1%} that year."
    pub = getattr(last, "published_rate", np.nan)
    if pd.notna(pub):
        text += f" DfE published {pub:.1%} for the council that year."
    return text


def compared_terms(report) -> pd.DataFrame:
    """The Cox terms a headline may choose from (not "Other"), with Holm-adjusted p-values."""
    t = report.cox.terms
    t = t[~t["term"].str.endswith(f"[{OTHER}]")].copy()
    t["estimable"] = [report.cox.estimable(term) for term in t["term"]]
    t["p_holm"] = holm(t["p_value"].where(t["estimable"]).to_numpy())  # among the terms that are shown
    return t


def clearest_term(report):
    """The Cox term with the clearest difference, or None.

    Only where the overall (robust Wald) test says the factors together go with re-referral
    (p < 0.05), and only among terms that stay clear after Holm's correction for the number of
    terms compared: picking the largest of 13 ratios finds one by chance far more often than 1 in 20.
    """
    if report.cox is None:
        return None
    glob = report.cox.global_test()
    if not (np.isfinite(glob["p_value"]) and glob["p_value"] < 0.05):
        return None
    t = compared_terms(report)
    t = t[(t["p_holm"] < 0.05) & t["estimable"]]
    if t.empty:
        return None
    return t.iloc[int(np.argmax(np.abs(t["coef"].to_numpy() / t["robust_se"].to_numpy())))]


def forest_title(report) -> str:
    """A headline title for the forest plot: the clearest factor, others held equal."""
    r = clearest_term(report)
    if r is None or not (r.term.endswith("]") and "[" in r.term):
        return "How each factor goes with being referred again sooner or later"
    cov, level = r.term[:-1].split("[", 1)
    who = _who(cov, level)
    return (
        f"{who[0].upper() + who[1:]} were referred again {'sooner' if r.hr > 1 else 'later'}, other factors held equal"
    )


def cox_headline(report) -> str | None:
    """The factor that goes with the biggest clear difference in the rate of re-referral, others held equal."""
    if report.cox is None:
        return None
    t = compared_terms(report)
    n, n_all = int(t["estimable"].sum()), len(t)
    compared = f"{n} factor level{'' if n == 1 else 's'} compared"
    if n < n_all:
        compared += f"; {n_all - n} more had too few re-referrals to estimate"
    glob = report.cox.global_test()
    r = clearest_term(report)
    if r is None:
        if np.isfinite(glob["p_value"]) and glob["p_value"] >= 0.05:
            return (
                "Taken together, the factors in the model do not clearly go with how soon children were "
                f"referred again (overall test p {_p(glob['p_value'])}, {compared}), so no single factor "
                "is picked out."
            )
        return (
            "Allowing for the other factors in the model, no factor showed a clear difference in how soon "
            f"children were referred again once the number compared is allowed for ({compared}, "
            "Holm's correction)."
        )
    ci = f"95% interval {r.ci_low:.2f} to {r.ci_high:.2f}"
    tail = f"; the clearest of {compared}, allowing for the number compared by Holm's method"
    if r.term.endswith("]") and "[" in r.term:
        cov, level = r.term[:-1].split("[", 1)
        ref = report.cox.references.get(cov)
        who, whom = _who(cov, level, True), _who(cov, ref, True) if ref is not None else "the comparison group"
        if r.hr >= 1:
            return (
                f"Allowing for the other factors in the model, {who} were referred again {r.hr:.1f} times as "
                f"fast as {whom} (hazard ratio {r.hr:.2f}, {ci}{tail})."
            )
        return (
            f"Allowing for the other factors in the model, {who} were referred again at {r.hr:.0%} of the "
            f"rate of {whom} (hazard ratio {r.hr:.2f}, {ci}{tail})."
        )
    change = "raised" if r.hr >= 1 else "lowered"
    return (
        f"Allowing for the other factors in the model, {term_label(r.term)} {change} the rate of "
        f"re-referral by {abs(r.hr - 1):.0%} (hazard ratio {r.hr:.2f}, {ci}{tail})."
    )


def dfe_note(report) -> str:
    """Why some years of DfE's measure are not shown (left truncation at the start, part-years at the end)."""
    d = report.dfe_measure
    left_out = d.loc[~d["complete"], "year"].astype(int).tolist()
    start = f" on {report.data_start.day} {report.data_start:%B %Y}" if report.data_start is not None else ""
    text = (
        f"The extract's referrals start{start}. A referral counts as a re-referral only if the previous "
        "referral is in the data, so in the first year of an extract the measure is too low: earlier "
        "referrals happened but cannot be seen. Only years with a full 12 months of earlier data, and that "
        "ended by the extract date, are shown."
    )
    if left_out:
        years = [str(y) for y in left_out]
        text += (
            f" Left out: the year{'' if len(years) == 1 else 's'} to 31 March "
            f"{', '.join(years[:-1]) + ' and ' + years[-1] if len(years) > 1 else years[0]}."
        )
    if not d["complete"].any():
        text += " No year in this extract qualifies, so the measure is not shown."
    return text


def caveats(report) -> list[str]:
    c = report.counts
    out = [
        "An episode runs from a case closing to the child's next referral. Referrals that overlap (one opening "
        "on or before the day another closes) count as one period of contact, not as a re-referral.",
        "The Kaplan-Meier curves treat children who turn 18, die or move to another council as no longer "
        "followed; the cumulative incidence allows for them properly and is the better guide to the share "
        "referred again.",
        "Children can have several episodes, and one child's episodes are not independent. So every interval "
        "and test here treats each child's episodes together (clustered by child): the bands of the curves and "
        "the intervals of the average days out of contact (infinitesimal jackknife summed by child), the test "
        "of whether the groups differ ("
        + (
            "a robust score test clustered by child, in place of the log-rank test"
            if report.logrank.method != "log-rank"
            else "the log-rank test, since no child has two episodes here"
        )
        + ") and the hazard ratios (robust errors clustered by child). Only the check of proportional hazards "
        "is not clustered (as in R's cox.zph).",
        "Only referrals in the extract can be seen. A child's earlier referrals before the extract starts are "
        "missing, so 'earlier referrals' is undercounted for children closed early in the extract, and DfE's "
        "measure is shown only for years with a full 12 months of earlier data.",
        "These are associations, not effects of the service: children in different groups differ in other "
        "ways, and a hazard ratio is about how soon children came back, not whether the service helped.",
        f"Curves stop where fewer than {report.min_at_risk} children are still followed, and counts below the "
        'disclosure threshold are hidden ("c"), so that no child can be recognised.',
    ]
    for cov, groups in report.cox.with_reference.items() if report.cox is not None else ():
        ref = group_label(cov, report.cox.references.get(cov, ""))
        out.append(
            f"In the hazard ratios by {GROUPINGS.get(cov, cov)}, the small groups "
            f"{', '.join(group_label(cov, g) for g in groups)} are counted with {ref} (the comparison group): "
            "together none of their children was referred again, so on their own they have no hazard ratio."
        )
    if c.get("referrals_after_extract"):
        n = int(c["referrals_after_extract"])
        words = report.count_words("referrals_after_extract")
        one = n == 1 and words == "1"
        out.append(
            f"{words} referral{'' if one else 's'} dated after the extract date {'was' if one else 'were'} left out."
        )
    return out


def rmst_sentences(report) -> list[str]:
    """Restricted mean time out of contact in words: the range across groups and the clearest difference."""
    r = report.rmst
    g = r.groups.set_index("group")
    out = [
        f"In the {_first(r.horizon)} after a case closed, children stayed out of contact for between "
        f"{g['rmst'].min():.0f} and {g['rmst'].max():.0f} days on average, depending on the group "
        f"(the table gives each group with its 95% interval)."
    ]
    # the clearest difference (largest z), among groups with a few re-referrals (a group with none has a
    # variance of zero, which says more about its size than about the children)
    events = dict(zip(report.logrank.groups["group"].astype(str), report.logrank.groups["observed"]))
    d = r.differences[
        (r.differences["p_value"] < 0.05) & (r.differences["group"].map(events).fillna(0) >= 5).to_numpy()
    ]
    if len(d):
        top = d.iloc[int(np.argmax(np.abs(d["difference"].to_numpy() / d["se"].to_numpy())))]
        days = abs(top.difference)
        lo, hi = sorted((abs(top.ci_low), abs(top.ci_high)))
        out.append(
            f"The clearest difference: {_who(report.group_by, top.group, True)} stayed out of contact "
            f"{days:.0f} day{'s' if round(days) != 1 else ''} {'longer' if top.difference > 0 else 'less'} "
            f"than {_who(report.group_by, top.reference, True)} (95% interval {lo:.0f} to {hi:.0f} days)."
        )
    else:
        out.append("No group differed clearly from the largest group.")
    return out


def definitions() -> list[str]:
    return [
        "Episode: the time from a case closing (or a referral ending in no further action) to the child's next "
        "referral, or to the end of the data.",
        "Re-referral (survival analysis): a new referral on a later day than the case closed.",
        "DfE re-referral rate: the share of referrals in a year (to 31 March) made within 12 months (365 days) "
        "of a previous referral of the same child, as DfE publishes it.",
        "Competing events: the child's 18th birthday, death (closure reason RC2) or transfer to another council "
        "(RC5); after these a re-referral to this council cannot happen.",
        "Kaplan-Meier curve: the share of children not yet referred again, by time since closure.",
        "Cumulative incidence: the share referred again by a given day, allowing for the competing events.",
        "Restricted mean survival time: the average number of days out of contact within the first year (or "
        "other period).",
        "Hazard ratio: how much faster (above 1) or slower (below 1) children in a group are referred again "
        "than the comparison group, other factors in the model held equal.",
        "95% interval: the range of values the data are consistent with; a narrow interval means a precise estimate.",
    ]
