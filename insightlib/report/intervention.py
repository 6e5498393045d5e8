"""The intervention report: the result of analyses/intervention.py (aggregates only, no row-level data)
in sentences, disclosure-controlled tables and figures, with the assumptions it rests on. The sentences are
here; the tables are in report/intervention_tables.py, the figures in report/intervention_charts.py and the
words they share in report/intervention_words.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from insightlib.analyses.intervention_parameters import COVARIATES, GRAPH_FROM_COVARIATES
from insightlib.contract import DISCLOSURE_THRESHOLD, MIN_EVENTS_FOR_ESTIMATE
from insightlib.report import intervention_tables, text
from insightlib.report.intervention_words import ASSUMPTIONS, points_range
from insightlib.report.words import TOO_FEW
from insightlib.stats.effects import Estimate


@dataclass
class InterventionEffect:
    """Everything the report needs, in aggregate form only (no row-level data)."""

    parameters: dict
    counts: dict
    adjustment_set: list[str]
    not_adjusted: list[str]
    methods: dict[str, Estimate]
    effect: dict[str, Estimate]
    naive: dict[str, Estimate]
    risks: dict[str, float]
    balance: pd.DataFrame
    ess: dict[str, float]
    overlap: dict
    survival: pd.DataFrame  # adjusted curves on a grid, with intervals and (unweighted) numbers at risk
    e_value: dict
    refutations: dict
    dowhy: dict
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    scenarios: Any = None  # insightlib.stats.scenarios.Scenarios (what if it reached more, or none)
    subgroups: Any = None  # insightlib.stats.subgroups.SubgroupEffects (who responds best)
    _ps: dict = field(default_factory=dict, repr=False)  # propensity scores by arm, for the overlap plot only

    # ---- results.json ------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "estimand": self.parameters.get("estimand"),
            "horizon_days": self.parameters.get("horizon_days"),
            "intervention": self.parameters.get("intervention"),
            "counts": self.counts,
            "adjustment_set": self.adjustment_set,
            "graph_from_covariates": bool(self.parameters.get("graph_from_covariates")),
            "effect": {k: v.to_dict() for k, v in self.effect.items()},
            "estimable": self.estimable(),  # the evaluation page pools only what the council's page shows
            "methods": {k: v.to_dict() for k, v in self.methods.items()},
            "naive": {k: v.to_dict() for k, v in self.naive.items()},
            "risks": self.risks,
            "balance": {
                "max_abs_smd_before": float(self.balance["smd_before"].abs().max()) if len(self.balance) else 0.0,
                "max_abs_smd_after": float(self.balance["smd_after"].abs().max()) if len(self.balance) else 0.0,
                "smd": {r.covariate: {"before": r.smd_before, "after": r.smd_after} for r in self.balance.itertuples()},
                "effective_sample_size": self._ess_published(),
            },
            "overlap": {k: v for k, v in self.overlap.items()},
            "e_value": self.e_value,
            "refutations": self.refutations,
            "dowhy": self.dowhy,
            "notes": self.notes,
            "seconds": self.seconds,
            "scenarios": self.scenarios.to_dict() if self.scenarios is not None else None,
            "subgroups": self.subgroups.to_dict() if self.subgroups is not None else None,
        }

    # ---- tables and figures (report/intervention_tables.py, report/intervention_charts.py) ----------------
    def table(self) -> pd.DataFrame:
        """Naive and adjusted estimates side by side (percentage points, days, ratios)."""
        return intervention_tables.estimates_table(self)

    def report_table(self) -> pd.DataFrame:
        """The naive comparison beside every adjusted estimate, formatted for the report."""
        return intervention_tables.report_table(self)

    def balance_summary(self) -> pd.DataFrame:
        return intervention_tables.balance_summary(self)

    def counts_table(self) -> pd.DataFrame:
        """Closed cases by group, with a total row (counts: pass through insightlib.report.disclosure before showing)."""
        return intervention_tables.counts_table(self)

    def safe_counts_table(self, threshold: int = DISCLOSURE_THRESHOLD, rounding: int | None = None) -> pd.DataFrame:
        """counts_table with small numbers suppressed (secondary suppression included)."""
        return intervention_tables.safe_counts_table(self, threshold, rounding)

    def before_shown(self) -> np.ndarray:
        """Per balance row, whether its difference before weighting may be published: for a yes/no
        characteristic it is a function of how many in each group have it, which the group sizes beside
        it can give back (report.disclosure.shares_shown)."""
        from insightlib.report.disclosure import shares_shown

        b, thr = self.balance, self.threshold()
        if "treated_with" not in b:
            return np.ones(len(b), bool)
        return np.array(
            [
                shares_shown([(r.treated_with, r.treated_n), (r.control_with, r.control_n)], thr)
                if r.treated_with == r.treated_with
                # a number (age, previous referrals): its means are sums over the group sizes, so not beside a small one
                else not any(1 <= n < thr for n in (r.treated_n, r.control_n))
                for r in b.itertuples()
            ],
            bool,
        )

    def balance_order(self, descending: bool) -> pd.DataFrame:
        """Rows by the size of their difference before weighting, the hidden ones apart (last in the table,
        first from the bottom of the chart) so that their place gives nothing of their size away."""
        b = self.balance.assign(_shown=self.before_shown())
        size = b["smd_before"].abs().where(b["_shown"], -1.0)
        return b.assign(_size=size).sort_values("_size", ascending=not descending, kind="stable")

    def balance_view(self) -> pd.DataFrame:
        """The love plot as a table: standardised differences before and after weighting."""
        return intervention_tables.balance_view(self)

    def curve_table(self, days=(91, 182, 365)) -> pd.DataFrame:
        """Adjusted share re-referred by day, with intervals (no counts; cut below 10 at risk)."""
        return intervention_tables.curve_table(self, days)

    def refutation_table(self) -> pd.DataFrame:
        return intervention_tables.refutation_table(self)

    # matplotlib is imported only when a figure is drawn (the analysis itself never needs it)
    def love_plot(self):
        from insightlib.report import intervention_charts

        return intervention_charts.love_plot(self)

    def overlap_plot(self):
        from insightlib.report import intervention_charts

        return intervention_charts.overlap_plot(self)

    def survival_plot(self):
        from insightlib.report import intervention_charts

        return intervention_charts.survival_plot(self)

    # ---- words shared by the tables and sentences -------------------------------------
    def threshold(self) -> int:
        """The disclosure threshold the report was made with."""
        return int(self.parameters.get("disclosure_threshold", DISCLOSURE_THRESHOLD))

    def level(self) -> str:
        """The confidence level in words ('95%')."""
        return f"{self.parameters.get('confidence_level', 0.95):.0%}"

    def naive_shown(self) -> bool:
        """Whether the simple comparison may be published. It is r1/n1 - r0/n0, and with the group
        sizes beside it a whole-number solution can be unique ("-14.9 points" of 6 and 17 children
        leaves one re-referred child): so it is shown only when no count behind it (re-referred
        and not, in each group) is from 1 to the threshold - 1, the rule that hides those counts
        in the table."""
        c, thr = self.counts, self.threshold()
        parts = []
        for arm in ("treated", "control"):
            r, n = int(c.get(f"rereferred_{arm}", 0)), int(c.get(f"binary_{arm}", 0))
            parts += [r, n - r]
        return not any(1 <= v < thr for v in parts)

    def estimable(self) -> bool:
        """Issue 11's rule for the headline effect and its E-value: published only where each group has at
        least MIN_EVENTS_FOR_ESTIMATE children re-referred within the horizon and the estimate has a proper
        interval (finite, not a single point) and a risk ratio above 0. A tiny council otherwise prints
        "from nan points fewer to nan points more" and an E-value of 4.35e12 (a risk ratio of 0)."""
        c = self.counts
        if min(int(c.get("rereferred_treated", 0)), int(c.get("rereferred_control", 0))) < MIN_EVENTS_FOR_ESTIMATE:
            return False
        rd = self.effect["risk_difference"]
        if not all(np.isfinite(v) for v in (rd.estimate, rd.ci_low, rd.ci_high)) or rd.ci_low == rd.ci_high:
            return False
        rr = self.effect.get("risk_ratio")
        if rr is not None and not (np.isfinite(rr.estimate) and rr.estimate > 0):
            return False
        ev = self.e_value.get("risk_ratio", {})
        return not ev or bool(np.isfinite(ev.get("estimate", np.nan)))

    def _n(self, n: int) -> str:
        """A count safe to print: small ones become 'fewer than <threshold>' (none stays 'none')."""
        n = int(n)
        thr = self.threshold()
        return "none" if n == 0 else f"fewer than {thr}" if n < thr else f"{n:,}"

    def ess_words(self) -> str:
        """The effective sample sizes. Kish's ESS is at most the group's size (with ATT the treated weights are 1
        and it is that size), so a group's ESS is shown only where the counts table shows its size."""
        shown = self.ess_shown()
        parts = [
            f"{self.ess[arm]:,.0f} cases {words}"
            if shown[arm]
            else f"not shown for the cases {words} (their number is hidden)"
            for arm, words in (("treated", "with the intervention"), ("control", "without"))
        ]
        return f"Effective sample size after weighting: {parts[0]} and {parts[1]}."

    def _ess_published(self) -> dict:
        """The effective sample sizes for results.json, null where the report hides them."""
        shown = self.ess_shown()
        return {k: (None if not shown.get(k, True) else v) for k, v in self.ess.items()}

    def ess_shown(self) -> dict:
        """Per group, whether its effective sample size may be shown: where the counts table shows its size."""
        table = self.safe_counts_table(self.threshold(), self.parameters.get("rounding"))
        column = table.columns[0]
        rows = {"treated": "Received the intervention", "control": "Did not"}
        return {arm: str(table.loc[row, column]).strip() != "c" for arm, row in rows.items()}

    def population_words(self) -> str:
        """Which episodes the estimates describe (trimming changes the population)."""
        trimmed = self.overlap.get("trimmed_total", 0)
        total = self.counts["episodes"]
        if not trimmed:
            return f"all {total:,} closed cases at risk of re-referral"
        share = trimmed / total
        return (
            f"the {self.counts['analysed']:,} closed cases where children who did and did not receive it were "
            f"comparable ({share:.0%} of {total:,} were set aside for poor overlap)"
        )

    def assumptions(self) -> list[str]:
        """The assumptions in plain English, with how the graph was arrived at where none was given."""
        extra = [GRAPH_FROM_COVARIATES] if self.parameters.get("graph_from_covariates") else []
        return list(ASSUMPTIONS) + extra

    def adjustment_words(self) -> str:
        names = [COVARIATES[c][1] for c in self.adjustment_set]
        return "; ".join(names) if names else "nothing (the graph shows no confounding path)"

    def headline(self) -> str:
        """One sentence a director can quote: direction, size, interval, in points."""
        p = self.parameters
        rd = self.effect["risk_difference"]
        h = p["horizon_days"]
        when = "a year" if h == 365 else f"{h} days"
        size = abs(rd.estimate) * 100
        if not self.estimable():
            return (
                f"{text.md(p['intervention'])}: the effect on re-referral within {when} of a case closing is "
                f"{TOO_FEW} (fewer than {MIN_EVENTS_FOR_ESTIMATE} children re-referred in a group, or no proper "
                "interval)."
            )
        if rd.ci_high < 0:
            verdict = f"re-referral within {when} of a case closing was {size:.1f} percentage points lower"
        elif rd.ci_low > 0:
            verdict = f"re-referral within {when} of a case closing was {size:.1f} percentage points higher"
        else:
            verdict = f"there is no clear difference in re-referral within {when} of a case closing"
        return (
            f"{text.md(p['intervention'])}: allowing for which children received it, {verdict} "
            f"({points_range(rd.ci_low, rd.ci_high)}; {self.level()} interval)."
        )

    def refutation_words(self) -> str:
        ok = [r for r in self.refutations.values() if "error" not in r]
        if not self.refutations:
            return "The robustness checks were not run (refutation_simulations in the evaluation file is 0)."
        rows = ok[0]["rows"] if ok else 0
        sims = ok[0]["simulations"] if ok else 0
        passed = sum(1 for r in self.refutations.values() if r.get("passed"))
        # fewer rows than the sample asked for: all the cases followed for the whole period, a count the
        # counts table may hide (as a complement), so the number is said only for a sample of the size asked for
        sample = int(self.parameters.get("refutation_sample", 0) or 0)
        on = (
            f"a random sample of {rows:,} closed cases"
            if rows == sample
            else "the closed cases followed for the whole period"
        )
        return (
            f"Each check re-ran the weighting estimate of re-referral within "
            f"{self.parameters['horizon_days']} days on {on}, "
            f"{'once' if sims == 1 else f'{sims} times'}, so its starting estimate differs a little from the headline. "
            f"{passed} of {len(self.refutations)} checks passed."
            + (
                ""
                if passed == len(self.refutations)
                else " A check passes when the estimate after the change lands as near to where it should be "
                "(zero for the random intervention, the starting estimate for the others) as chance alone "
                "would usually put it, judged from the estimate's own uncertainty; a check fails by chance "
                "about 1 time in 20, so a check that did not pass is a reason for caution rather than proof "
                "that the estimate is wrong."
            )
        )

    def evalue_words(self) -> str:
        """What strength of unmeasured confounding would overturn the finding, in words."""
        ev = self.e_value.get("risk_ratio", {})
        hr = self.e_value.get("hazard_ratio", {})
        if not ev:
            return ""
        if not self.estimable():
            return (
                f"The E-value (how strong an unmeasured factor would have to be to explain the effect away): {TOO_FEW}, "
                "as the effect itself is."
            )
        rr = ev["risk_ratio"]
        conversion = (
            "converted to a risk ratio with VanderWeele's square-root rule, as re-referral is common"
            if self.e_value.get("outcome_common")
            else "taken as a risk ratio, as re-referral is rare here"
        )
        crosses = ev.get("ci") == 1.0
        lines = [
            f"The adjusted risk ratio is {rr:.2f} (re-referral by day {self.parameters['horizon_days']} with the intervention as a "
            f"share of re-referral without it). Its E-value is **{ev['estimate']:.2f}**: an unmeasured factor would have to make "
            f"children about {ev['estimate']:.2f} times as likely to receive the intervention, and (separately) about "
            f"{ev['estimate']:.2f} times as likely to be re-referred, over and above the characteristics allowed for, to "
            f"explain the whole effect away. Weaker confounding could not.",
            (
                "The interval already includes no effect, so no unmeasured confounding is needed to make the result "
                "inconclusive."
                if crosses
                else f"To shift the interval so that it includes no effect would take such a factor of strength "
                f"**{ev['ci']:.2f}** with both."
            ),
        ]
        if (
            hr
            and all(np.isfinite(hr.get(k, np.nan)) for k in ("estimate", "ci"))
            and np.isfinite(self.effect["hazard_ratio"].estimate)
            and self.effect["hazard_ratio"].estimate > 0
        ):
            lines.append(
                f"For the hazard ratio ({self.effect['hazard_ratio'].estimate:.2f}, {conversion}) the E-value is "
                f"{hr['estimate']:.2f}, and {hr['ci']:.2f} for its interval."
            )
        return " ".join(lines)

    def _love_alt_text(self) -> str:
        """The love plot in words: the largest difference before weighting among those shown, and after."""
        shown = self.before_shown()
        before = self.balance["smd_before"].abs()[shown]
        after = float(self.balance["smd_after"].abs().max()) if len(self.balance) else 0.0
        what = f"Dot plot of standardised differences for {len(self.balance)} characteristics: "
        if shown.all():
            return (
                what
                + f"the largest was {before.max() if len(before) else 0.0:.2f} before weighting and {after:.2f} after."
            )
        if len(before):
            return what + (
                f"the largest shown was {before.max():.2f} before weighting (some are hidden: small counts) "
                f"and the largest was {after:.2f} after."
            )
        return what + f"those before weighting are hidden (small counts); the largest after was {after:.2f}."

    def alt_text(self, figure: str) -> str:
        if figure == "love":
            return self._love_alt_text()
        rd = self.effect["risk_difference"]
        if figure == "overlap":
            q = self.overlap["propensity_quantiles"]
            lo, hi = self.overlap.get("trim_low", 0.0), self.overlap.get("trim_high", 1.0)
            kept = (
                f" Episodes outside {lo:.2f} to {hi:.2f} ({self._n(self.overlap.get('trimmed_total', 0))}) were set aside."
                if lo > 0 or hi < 1
                else " None were set aside."
            )
            return (
                f"Histograms of the estimated chance of receiving the intervention: median {q['treated'][50]:.2f} "
                f"among those who received it and {q['control'][50]:.2f} among those who did not.{kept}"
            )
        if not self.estimable():
            return (
                f"Adjusted cumulative re-referral curves up to day {self.parameters['horizon_days']}, with and without "
                f"the intervention; the difference between them is {TOO_FEW}."
            )
        end = self.survival.iloc[-1] if len(self.survival) else None

        def risk(arm: str) -> str:  # as the chart and the curve table show it at the horizon
            ok = end is not None and bool(end.get(f"{arm}_shown", True))
            return f"{100 * self.risks[arm]:.1f}%" if ok else "too few to show"

        return (
            f"Adjusted cumulative re-referral curves up to day {self.parameters['horizon_days']}: "
            f"{risk('treated')} with the intervention and {risk('control')} without "
            f"(difference {100 * rd.estimate:.1f} points, {self.level()} interval {100 * rd.ci_low:.1f} to {100 * rd.ci_high:.1f})."
        )

    # ---- words ---------------------------------------------------------------------
    def explain(self) -> str:
        """The finding, its uncertainty and what would overturn it, in plain English (markdown)."""
        p = self.parameters
        rd, nv = self.effect["risk_difference"], self.naive["risk_difference"]
        h = p["horizon_days"]
        if p["estimand"] == "ATE":
            meaning = (
                f"This compares re-referral if every child in the analysis had received it with re-referral if none "
                f"had, among {self.population_words()}."
            )
        else:
            meaning = (
                f"This compares the children who received it with what would have happened to the same "
                f"children without it, among {self.population_words()}."
            )
        if not self.estimable():
            sure = ""
        elif rd.ci_high < 0 or rd.ci_low > 0:
            sure = "The interval does not include zero, so chance alone is an unlikely explanation."
        else:
            sure = "The interval includes zero: the data are consistent with no effect."
        aipw = self.methods.get("aipw")
        simple = (
            (
                f"**Simple comparison.** Comparing the two groups as they are gives {100 * nv.estimate:+.1f} points "
                f"({points_range(nv.ci_low, nv.ci_high)}) among closed cases followed for the whole {h} days"
                + (
                    f", against {100 * aipw.estimate:+.1f} points once the groups are made alike (doubly robust estimate on the "
                    f"same cases)"
                    if aipw is not None
                    else ""
                )
                + ". The gap is the part explained by which children were chosen for the intervention."
            )
            if self.naive_shown()
            else (
                f"**Simple comparison.** Not shown: a group has fewer than {self.threshold()} children re-referred (or not "
                "re-referred) among closed cases followed for the whole period, and with the group sizes the comparison "
                "would give that number away."
            )
        )
        lines = [f"**Finding.** {self.headline()} {meaning} {sure}".rstrip(), simple]
        if self.e_value.get("risk_ratio"):
            lines.append(f"**What would overturn it.** {self.evalue_words()}")
        return "\n\n".join(lines)
