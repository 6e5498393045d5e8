"""Words, tables and charts of the practice insight report (analyses.practice.PracticeResult in).

Every count of children or referrals from the council's extract passes disclosure control
(report.disclosure.suppress_table: small counts and what would reveal them are "c"), and a
rate, share or ratio is shown only where the counts behind it are shown. Text that comes from
data (team names) is text (report.text.md). Published DfE figures keep DfE's own symbols.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib import contract
from insightlib.analyses.practice import PracticeResult
from insightlib.analyses.practice_disproportionality import AFTER_REFERRAL, GROUPS
from insightlib.analyses.practice_groupings import HOOD_2023
from insightlib.analyses.published_practice import WORKFORCE_MEASURES
from insightlib.report import charts, disclosure
from insightlib.report.rereferral_charts import km_figure
from insightlib.report.text import md
from insightlib.report.words import plural

C = disclosure.SUPPRESSED


def _pct(x, dp: int = 0) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x * 100:.{dp}f}%"


def _ratio(r, lo, hi) -> str:
    if r is None or not np.isfinite(r):
        return ""
    return f"{r:.2f} ({lo:.2f} to {hi:.2f})"


def _verdict(lo, hi) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "too few to say"
    if lo > 1:
        return "higher"
    if hi < 1:
        return "lower"
    return "no clear difference"


class PracticeReport:
    def __init__(
        self, result: PracticeResult, threshold: int = contract.DISCLOSURE_THRESHOLD, rounding: int | None = None
    ):
        self.r = result
        self._groupings_hidden: set = set()
        self.threshold = threshold
        self.rounding = rounding

    def _small(self, n) -> bool:
        return n is None or not np.isfinite(n) or 0 < n < self.threshold

    # --- groupings ---------------------------------------------------------------------------

    def groupings_table(self) -> pd.DataFrame | None:
        g = self.r.groupings
        if g is None:
            return None
        c = g.classes.set_index("name")
        counts = pd.DataFrame({"Assessments": c["assessments"].astype(float)}, index=c.index)
        counts.loc["Total"] = counts["Assessments"].sum()
        # the total is known to a reader from any grouping's count over its share, so it is never the complement
        sup = disclosure.suppress_table(
            counts,
            ["Assessments"],
            self.threshold,
            self.rounding,
            total_row="Total",
            known={"Total": float(counts.loc["Total", "Assessments"])},
        )
        self._groupings_hidden = set(sup.mask.index[sup.mask["Assessments"]]) - {"Total"}
        out = sup.display.drop(index="Total").copy()
        shown = ~sup.mask.drop(index="Total")["Assessments"]
        out["Share of assessments"] = [_pct(s, 1) if ok else C for s, ok in zip(c["share"], shown)]
        out["Most distinctive factors (share of the grouping with it)"] = [
            "; ".join(f"{f['label']} ({f['probability'] * 100:.0f}%)" for f in fs) for fs in c["factors"]
        ]
        out["Hood et al. (2023) category"] = [h or "no counterpart named" for h in c["hood_2023"]]
        out["Hood et al. share"] = [
            f"{v}%" if isinstance(v, (int, float)) and np.isfinite(v) else "" for v in c["hood_share"]
        ]
        out.index.name = "Grouping of need"
        return out

    def bic_chart(self):
        g = self.r.groupings
        b = g.choice.bic
        fig, ax = charts.new_figure(
            f"{g.choice.chosen} {plural(g.choice.chosen, 'grouping')} fit"
            f"{'s' if g.choice.chosen == 1 else ''} the factors best (lowest BIC)"
        )
        ax.plot(b["k"], b["bic"], marker="o", color=charts.DARK_BLUE)
        ax.axvline(g.choice.chosen, color=charts.REFERENCE_GREY, linestyle="--")
        ax.set_xlabel("Number of groupings")
        ax.set_ylabel("BIC (lower is better)")
        alt = (
            "Line chart of the Bayesian information criterion for 1 to "
            f"{int(b['k'].max())} groupings; the lowest is at {g.choice.chosen}."
        )
        return fig, alt

    def groupings_km_chart(self):
        g = self.r.groupings
        if g is None or g.km is None:
            return None
        fig = km_figure(
            g.km, title="How soon children come back, by grouping of need", min_at_risk=contract.MIN_AT_RISK
        )
        return fig, (
            "Kaplan-Meier curves of the share not yet re-referred after case closure, one per grouping of "
            f"need; each curve stops where fewer than {contract.MIN_AT_RISK} children remain followed up."
        )

    def _cox_rows(self, cox, prefix: str | None = None, labels: dict | None = None) -> pd.DataFrame:
        rows = []
        for t in cox.terms.itertuples():
            if prefix and not t.term.startswith(prefix):
                continue
            events = cox.term_events.get(t.term, 0)
            name = (labels or {}).get(t.term, t.term)
            ok = events >= self.threshold and np.isfinite(t.hr)
            rows.append(
                {
                    "": name,
                    "Hazard ratio (95% interval)": _ratio(t.hr, t.ci_low, t.ci_high) if ok else C,
                    "Re-referral": (_verdict(t.ci_low, t.ci_high) if ok else "too few to say"),
                }
            )
        return pd.DataFrame(rows).set_index("")

    def groupings_cox_table(self) -> pd.DataFrame | None:
        g = self.r.groupings
        if g is None or g.cox is None:
            return None
        ref = g.cox.references.get("grouping", "")
        labels = {t: t[len("grouping[") : -1] for t in g.cox.terms["term"]}
        out = self._cox_rows(g.cox, "grouping[", labels)
        out.index.name = f"Against {ref}"
        return out

    # --- practice patterns -------------------------------------------------------------------

    PATTERN_LABELS = {
        "worker_changes": "each change of allocated worker",
        "weeks_to_assessment": "each week from referral to assessment authorised",
        "plan[Child in need plan]": "child in need plan (against no plan)",
        "plan[Child protection plan]": "child protection plan (against no plan)",
        "plan_months": "each month on a plan",
    }

    def patterns_table(self) -> pd.DataFrame | None:
        p = self.r.patterns
        if p is None:
            return None
        out = self._cox_rows(p.cox, None, self.PATTERN_LABELS)
        out = out.loc[[v for v in self.PATTERN_LABELS.values() if v in out.index]]
        out.index.name = "Practice pattern"
        return out

    def team_table(self) -> pd.DataFrame | None:
        p = self.r.patterns
        if p is None or p.team_cox is None:
            return None
        labels = {t: t[len("team[") : -1] for t in p.team_cox.terms["term"]}
        out = self._cox_rows(p.team_cox, "team[", labels)
        out.index.name = f"Team at closure, against {p.team_cox.references.get('team', '')}"
        return out

    # --- disproportionality ------------------------------------------------------------------

    def population_table(self) -> pd.DataFrame | None:
        pop = self.r.population
        if pop is None:
            return None
        counts = pd.DataFrame({"Children referred": pop["children_referred"].to_numpy()}, index=pop["group"])
        counts.loc["Total"] = counts["Children referred"].sum()
        sup = disclosure.suppress_table(counts, ["Children referred"], self.threshold, self.rounding, total_row="Total")
        shown = ~sup.mask["Children referred"]
        out = sup.display.copy()
        rate = list(pop["rate_per_10000"]) + [pop.attrs["overall_rate"]]
        lo = list(pop["ci_low"]) + [np.nan]
        hi = list(pop["ci_high"]) + [np.nan]
        out["Per 10,000 children (95% interval)"] = [
            (f"{r:.1f} ({a:.1f} to {b:.1f})" if np.isfinite(a) else f"{r:.1f}") if ok else C
            for r, a, b, ok in zip(rate, lo, hi, shown)
        ]
        out["Census 2021 share (all ages)"] = [_pct(s, 1) for s in pop["census_share"]] + ["100%"]
        out["Relative rate index (95% interval)"] = [
            _ratio(r, a, b) if ok else C for r, a, b, ok in zip(pop["rri"], pop["rri_low"], pop["rri_high"], shown)
        ] + ["1"]
        out["Against the council's overall rate"] = [
            _verdict(a, b) if ok else "too few to say" for a, b, ok in zip(pop["rri_low"], pop["rri_high"], shown)
        ] + [""]
        out.index.name = "Ethnic group"
        return out

    def referrals_published(self) -> bool:
        """Whether the referrals in the extract may be worked out here (each grouping's referrals add up to
        them): only where the re-referral report publishes them too (report.rereferral.published_counts),
        else its hidden counts would be bounded by the referrals less the episodes followed up."""
        rc = self.r.rereferral_counts
        if not rc:
            return True
        from insightlib.report.rereferral import published_counts

        return published_counts(rc["counts"], rc["followed_up"], self.threshold, self.rounding)[1]

    def after_referral_table(self, by: str) -> pd.DataFrame:
        """Per group: its referrals and, per outcome, the share (with the relative rate index).

        One suppression over the whole table (report.disclosure): the referrals, and per outcome the
        referrals with it and without it (referrals = with + without, row by row; a share of 97% of 30
        is one child without). A share is shown only where all three are. The totals are known to a
        reader whatever is hidden (the other groupings add up to the same referrals, and a shown
        group's share over its relative rate index gives the council's share), so they are pinned:
        never the cell hidden to protect another."""
        a = self.r.after_referral
        a = a[a["by"] == by]
        groups = list(dict.fromkeys(a["group"]))
        counts = pd.DataFrame(index=groups)
        first = a[a["outcome"] == next(iter(AFTER_REFERRAL))].set_index("group")
        counts["referrals"] = first["referrals"].reindex(groups).to_numpy(float)
        identities = []
        for outcome in AFTER_REFERRAL:
            d = a[a["outcome"] == outcome].set_index("group").reindex(groups)
            counts[f"{outcome}:with"] = d["events"].to_numpy(float)
            counts[f"{outcome}:without"] = (d["referrals"] - d["events"]).to_numpy(float)
            identities += [
                {(g, "referrals"): 1.0, (g, f"{outcome}:with"): -1.0, (g, f"{outcome}:without"): -1.0}
                for g in [*groups, "All referrals"]
            ]
        counts.loc["All referrals"] = counts.sum()
        cols = list(counts.columns)
        known = {("All referrals", c): float(counts.loc["All referrals", c]) for c in cols}
        at_most = [((g, f"{o}:with"), (g, "referrals")) for g in groups for o in AFTER_REFERRAL]
        sup = disclosure.suppress_table(
            counts,
            cols,
            self.threshold,
            self.rounding,
            total_row="All referrals",
            identities=identities,
            known=known,
            at_most=at_most,
        )
        mask = sup.mask.drop(index="All referrals")
        frames = []
        for outcome, words in AFTER_REFERRAL.items():
            d = a[a["outcome"] == outcome].set_index("group").reindex(groups)
            ok = ~mask[["referrals", f"{outcome}:with", f"{outcome}:without"]].any(axis=1)
            col = [
                (f"{_pct(s)} ({_ratio(r, lo, hi)})" if _ratio(r, lo, hi) else _pct(s)) if k else C
                for s, r, lo, hi, k in zip(d["share"], d["rri"], d["rri_low"], d["rri_high"], ok)
            ]
            frames.append(pd.Series(col, index=groups, name=words.capitalize()))
        referrals = sup.display.drop(index="All referrals")["referrals"].rename("Referrals")
        if not self.referrals_published():
            referrals = pd.Series(C, index=referrals.index, name="Referrals")
        out = pd.concat([referrals] + frames, axis=1)
        out.index.name = GROUPS[by].capitalize()
        return out

    # --- published context ---------------------------------------------------------------------

    def profile_table(self, n: int = 12) -> pd.DataFrame | None:
        p = self.r.profile
        if p is None:
            return None
        p = p.head(n)
        out = pd.DataFrame(
            {
                "Factor": p["label"].str.capitalize(),
                "Council per 100 (95% interval)": [
                    C if s else f"{v:.1f} ({a:.1f} to {b:.1f})"
                    for v, a, b, s in zip(p["per_100"], p["ci_low"], p["ci_high"], p["symbol"])
                ],
                "Neighbours": p["neighbours_per_100"].map(lambda v: f"{v:.1f}" if np.isfinite(v) else ""),
                "England": p["england_per_100"].map(lambda v: f"{v:.1f}" if np.isfinite(v) else ""),
                "Against England": [
                    _ratio(r, a, b) for r, a, b in zip(p["vs_england"], p["vs_england_low"], p["vs_england_high"])
                ],
                "Against neighbours": [
                    _ratio(r, a, b)
                    for r, a, b in zip(p["vs_neighbours"], p["vs_neighbours_low"], p["vs_neighbours_high"])
                ],
            }
        ).set_index("Factor")
        return out

    def workforce_table(self) -> pd.DataFrame | None:
        w = self.r.workforce
        if w is None:
            return None
        y = w["year"].max()
        w = w[w["year"] == y]
        out = pd.DataFrame(
            {
                "Measure": [WORKFORCE_MEASURES[m] for m in w["measure"]],
                "Council": [s if s else f"{v:.1f}" for v, s in zip(w["council"], w["council_symbol"])],
                "Neighbours (median, range)": [
                    f"{m:.1f} ({lo:.1f} to {hi:.1f})" if np.isfinite(m) else ""
                    for m, lo, hi in zip(w["neighbours_median"], w["neighbours_low"], w["neighbours_high"])
                ],
                "England": w["england"].map(lambda v: f"{v:.1f}"),
            }
        ).set_index("Measure")
        out.index.name = f"Social work workforce, {y}"
        return out

    def funnel_chart(self):
        return deprivation_funnel_figure(self.r.funnel, self.r.la_code, self.r.la_name)

    # --- words ----------------------------------------------------------------------------------

    def funnel_sentence(self) -> str:
        t = self.r.funnel.table.set_index("la_code")
        if self.r.la_code not in t.index:
            return f"{md(self.r.la_name)} has no published children in need figure for the deprivation funnel."
        row = t.loc[self.r.la_code]
        where = {
            "as expected": "within the limits of what its deprivation predicts",
            "above (95%)": "above what its deprivation predicts (beyond the 95% limit)",
            "above (99.8%)": "well above what its deprivation predicts (beyond the 99.8% limit)",
            "below (95%)": "below what its deprivation predicts (beyond the 95% limit)",
            "below (99.8%)": "well below what its deprivation predicts (beyond the 99.8% limit)",
        }[row["verdict"]]
        return (
            f"In {t.attrs.get('year', '')} {md(self.r.la_name)} had {row['rate']:.0f} children in need per 10,000 "
            f"children; its deprivation predicts {row['expected_rate']:.0f}, so it is {where} (published data)."
        )

    def headlines(self) -> list[str]:
        out = []
        g = self.r.groupings
        if g is not None:
            big = g.classes.sort_values("share", ascending=False).iloc[0]
            self.groupings_table()
            n_ok = not self._small(big["assessments"]) and big["name"] not in self._groupings_hidden
            if g.choice.chosen == 1:  # one grouping fits best: no groupings of need stand apart
                out.append(
                    "The factors recorded at assessment do not fall into distinct groupings of need: one grouping "
                    "fits them best (lowest BIC)."
                )
            else:
                out.append(
                    f"The factors recorded at assessment fall into {g.choice.chosen} groupings of need; the largest, "
                    f"*{md(big['name'].lower())}*, covers "
                    + (_pct(big["share"]) if n_ok else "a share (suppressed)")
                    + " of assessments"
                    + (
                        f" (Hood et al. found {HOOD_2023[big['hood_2023']]}% in their "
                        "'" + big["hood_2023"].lower() + "' category)"
                        if big["hood_2023"] and HOOD_2023.get(big["hood_2023"])
                        else ""
                    )
                    + "."
                )
        p = self.r.patterns
        if p is not None:
            t = p.cox.terms.set_index("term")
            if "worker_changes" in t.index and p.cox.term_events.get("worker_changes", 0) >= self.threshold:
                w = t.loc["worker_changes"]
                v = _verdict(w["ci_low"], w["ci_high"])
                out.append(
                    (
                        "Each change of allocated worker goes with a "
                        if v != "no clear difference"
                        else "Changes of allocated worker show no clear association with re-referral: each goes with a "
                    )
                    + f"{abs(w['hr'] - 1) * 100:.0f}% {'higher' if w['hr'] >= 1 else 'lower'} rate of re-referral "
                    f"(hazard ratio {_ratio(w['hr'], w['ci_low'], w['ci_high'])}), with need, age, previous "
                    "referrals, disability, plan and time to assessment held equal. This is an association, "
                    "not a cause: the intervention notebook answers causal questions."
                )
        pop = self.r.population
        if pop is not None:
            shown = pop[(pop["children_referred"] >= self.threshold) & np.isfinite(pop["rri_low"])]
            hi = shown[shown["rri_low"] > 1]
            if len(hi):
                out.append(
                    "Compared with their share of the population, more children are referred from "
                    + ", ".join(
                        f"{md(r.group)} ({r.rri:.1f} times the council's overall rate)" for r in hi.itertuples()
                    )
                    + " groups; the Census counts all ages, and children are more diverse than adults."
                )
            else:
                out.append("No ethnic group is referred clearly more often than its share of the population suggests.")
        out.append(self.funnel_sentence())
        return out

    def caveats(self) -> list[str]:
        out = [
            "Recording practice differs between councils and between workers: a factor not recorded is not a factor absent, "
            "and DfE's published factors cover only assessments with at least one factor.",
            "Groupings are found by latent class analysis of the factors recorded (those in at least 1 in 100 "
            "assessments); each assessment is placed in its most likely grouping, so the curves by grouping ignore "
            "the uncertainty of that placing.",
            "Practice patterns are associations: a case held longer or by more workers may differ in ways the data "
            "do not record. For the effect of an intervention, use the intervention notebook.",
            "Rates by ethnic group use ONS estimates of children aged 0 to 17 shared out by Census 2021 ethnic shares "
            "for all ages; children are more diverse than adults, so groups younger on average look more over-represented "
            "than they are. Children whose ethnicity is not recorded are left out of these rates.",
            "The deprivation funnel uses IMD 2019 (IDACI) on 2019 boundaries; councils formed since take the county "
            "they came from. Limits allow for the spread between councils (over-dispersion).",
        ]
        out += [md(n) for n in self.r.notes]
        return out

    def figures(self) -> dict:
        """results.json figures: only what the report shows (suppressed counts are null)."""
        d = self.r.to_dict()
        g = d.get("groupings")
        if g:
            self.groupings_table()
            for name, v in g["classes"].items():
                if self._small(v["assessments"]) or name in self._groupings_hidden:
                    v["assessments"], v["share"] = None, None
            g.pop("km", None)
        pop = self.r.population
        if pop is not None:
            d["population_rates"] = {
                r.group: (
                    {
                        "rate_per_10000": r.rate_per_10000,
                        "ci_low": r.ci_low,
                        "ci_high": r.ci_high,
                        "rri": r.rri,
                        "rri_low": r.rri_low,
                        "rri_high": r.rri_high,
                    }
                    if not self._small(r.children_referred)
                    else {"suppressed": True}
                )
                for r in pop.itertuples()
            }
        d["disclosure_threshold"] = self.threshold
        return d


FUNNEL_TITLE = "Children in need against what each council's deprivation predicts"


def deprivation_funnel_figure(f, la_code: str | None = None, la_name: str | None = None, width: float = 7.5):
    """The deprivation-adjusted funnel of every council (stats.deprivation_funnel), one council marked."""
    t = f.table
    fig, ax = charts.new_figure(FUNNEL_TITLE, width=width)
    e = np.geomspace(t["expected"].min() * 0.8, t["expected"].max() * 1.2, 200)
    for level, style in ((0.95, "--"), (0.998, ":")):
        lo, hi = f.limits_at(e, level)
        ax.plot(e, lo, style, color=charts.DARK_GREY, lw=1)
        ax.plot(e, hi, style, color=charts.DARK_GREY, lw=1, label=f"{level * 100:g}% limits")
    ax.scatter(t["expected"], t["ratio"], s=12, color=charts.TURQUOISE, alpha=0.7, label="councils")
    own = t[t["la_code"] == la_code] if la_code else t.iloc[:0]
    if len(own):
        ax.scatter(own["expected"], own["ratio"], s=60, color=charts.DARK_PINK, zorder=3, label=la_name or la_code)
    ax.axhline(1, color=charts.REFERENCE_GREY)
    ax.set_xscale("log")
    ax.set_xlabel("Children in need expected from population and deprivation (IDACI 2019)")
    ax.set_ylabel("Observed / expected")
    ax.legend(frameon=False, fontsize=8)
    alt = (
        f"Funnel plot of {len(t)} councils: each council's children in need at 31 March "
        f"{t.attrs.get('year')} divided by the number its child population and IDACI score predict, "
        "against the number expected, with 95% and 99.8% limits allowing for over-dispersion."
    )
    return fig, alt
