"""The intervention report: the result of analyses/intervention.py (aggregates only, no row-level data)
in sentences, disclosure-controlled tables and figures, with the assumptions it rests on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from insightlib.analyses.intervention_parameters import COVARIATES, GRAPH_FROM_COVARIATES
from insightlib.report import text
from insightlib.stats.effects import Estimate
from insightlib.contract import BALANCE_CUTOFF, DISCLOSURE_THRESHOLD, MIN_EVENTS_FOR_ESTIMATE
from insightlib.report.words import TOO_FEW


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
                "effective_sample_size": self.ess,
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

    # ---- tables --------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """Naive and adjusted estimates side by side (percentage points, days, ratios)."""
        rows = []

        def add(label, est: Estimate, scale=1.0, unit=""):
            rows.append(
                {
                    "comparison": label,
                    "estimate": est.estimate * scale,
                    "ci_low": est.ci_low * scale,
                    "ci_high": est.ci_high * scale,
                    "unit": unit,
                    "interval": est.method,
                }
            )

        add("Naive difference in re-referral within horizon", self.naive["risk_difference"], 100, "percentage points")
        labels = {
            "ipw": "Inverse probability weighting",
            "matching": "Propensity-score matching",
            "regression": "Regression adjustment",
            "aipw": "Doubly robust (AIPW)",
        }
        for k, v in self.methods.items():
            add(f"{labels.get(k, k)}: difference in re-referral", v, 100, "percentage points")
        add(
            "Weighted Kaplan-Meier: difference in risk of re-referral",
            self.effect["risk_difference"],
            100,
            "percentage points",
        )
        add(
            "Weighted Kaplan-Meier: difference in days before re-referral (RMST)",
            self.effect["rmst_difference"],
            1,
            "days",
        )
        add("Weighted Cox: hazard ratio", self.effect["hazard_ratio"], 1, "ratio")
        return pd.DataFrame(rows)

    def balance_summary(self) -> pd.DataFrame:
        b = self.balance.copy()
        b["balanced_after"] = b["smd_after"].abs() < BALANCE_CUTOFF
        return b

    def counts_table(self) -> pd.DataFrame:
        """Closed cases by group, with a total row (counts: pass through insightlib.report.disclosure before showing)."""
        c = self.counts
        h = self.parameters.get("horizon_days")
        df = pd.DataFrame(
            {
                "Closed cases analysed": [c["analysed_treated"], c["analysed_control"]],
                f"Followed for the whole {h} days": [c["binary_treated"], c["binary_control"]],
                f"Re-referred within {h} days": [c["rereferred_treated"], c["rereferred_control"]],
            },
            index=["Received the intervention", "Did not"],
        )
        df.loc["Total"] = df.sum()
        return df

    def safe_counts_table(self, threshold: int = DISCLOSURE_THRESHOLD, rounding: int | None = None) -> pd.DataFrame:
        """counts_table with small numbers suppressed (insightlib.report.disclosure; the total row makes it
        apply secondary suppression, so a hidden count cannot be worked out from the total)."""
        from insightlib.report import disclosure

        df = self.counts_table()
        # the sentences under "The finding" state how many closed cases were analysed: that total is
        # published there, so it is never the cell hidden to protect another
        known = {("Total", "Closed cases analysed"): int(df.loc["Total", "Closed cases analysed"])}
        # and a reader knows, row by row, re-referred <= followed up <= analysed
        cols = list(df.columns)
        at_most = [((row, cols[k + 1]), (row, cols[k])) for row in df.index for k in range(len(cols) - 1)]
        res = disclosure.suppress_table(df, cols, threshold, rounding, total_row="Total", known=known, at_most=at_most)
        out = res.table().map(
            lambda v: f"{int(v):,}" if isinstance(v, (int, np.integer, float, np.floating)) and np.isfinite(v) else v
        )
        out.index.name = None
        out.columns.name = "Group"
        if res.n_primary or res.n_secondary or rounding:
            out.attrs["note"] = res.footnote()
        return out

    # ---- words shared by the tables and sentences -------------------------------------
    def _threshold(self) -> int:
        return int(self.parameters.get("disclosure_threshold", 5))

    def _level(self) -> str:
        return f"{self.parameters.get('confidence_level', 0.95):.0%}"

    def naive_shown(self) -> bool:
        """Whether the simple comparison may be published. It is r1/n1 - r0/n0, and with the group
        sizes beside it a whole-number solution can be unique ("-14.9 points" of 6 and 17 children
        leaves one re-referred child): so it is shown only when no count behind it (re-referred
        and not, in each group) is from 1 to the threshold - 1, the rule that hides those counts
        in the table."""
        c, thr = self.counts, self._threshold()
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
        thr = self._threshold()
        return "none" if n == 0 else f"fewer than {thr}" if n < thr else f"{n:,}"

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
            f"({_points_range(rd.ci_low, rd.ci_high)}; {self._level()} interval)."
        )

    # ---- tables (aggregates only; counts pass through insightlib.report.disclosure) -------------
    def report_table(self) -> pd.DataFrame:
        """The naive comparison beside every adjusted estimate, formatted for the report."""
        labels = {
            "ipw": "Inverse probability weighting",
            "matching": "Propensity-score matching (1:1)",
            "regression": "Regression adjustment",
            "aipw": "Doubly robust (AIPW)",
        }
        h = self.parameters["horizon_days"]
        rows = {}
        unstable = []

        def pts(e: Estimate) -> tuple[str, str]:
            if not np.isfinite(e.estimate):
                return TOO_FEW, TOO_FEW
            # a difference in shares lies between -100 and +100 points; an interval outside that (or missing)
            # means the variance broke down, and printing it would mislead
            if not (np.isfinite(e.ci_low) and np.isfinite(e.ci_high)) or e.ci_low < -1 or e.ci_high > 1:
                unstable.append(e)
                return f"{100 * e.estimate:+.1f} points", "could not be worked out (unstable)"
            return f"{100 * e.estimate:+.1f} points", f"{100 * e.ci_low:+.1f} to {100 * e.ci_high:+.1f}"

        # short names of how each interval was made (the full description is in results.json)
        how = {
            "naive": "influence function",
            "ipw": "influence function, propensity model allowed for",
            "matching": "Abadie-Imbens variance",
            "regression": "delta method",
            "aipw": "influence function",
        }
        boot = f"bootstrap of children ({self.parameters.get('bootstrap_reps', '')} samples)"
        n = self.naive["risk_difference"]
        rows[f"Simple comparison (no adjustment): re-referred within {h} days"] = (
            (*pts(n), how["naive"]) if self.naive_shown() else ("c", "c", how["naive"])
        )
        for k, v in self.methods.items():
            rows[f"{labels.get(k, k)}: re-referred within {h} days"] = (*pts(v), how.get(k, ""))
        rd, rm, hr = self.effect["risk_difference"], self.effect["rmst_difference"], self.effect["hazard_ratio"]
        rows[f"Weighted Kaplan-Meier: re-referred by day {h} (headline)"] = (
            (*pts(rd), boot) if self.estimable() else (TOO_FEW, TOO_FEW, boot)
        )
        ok = self.estimable()
        rows[f"Weighted Kaplan-Meier: days free of re-referral in the first {h} (RMST)"] = (
            (f"{rm.estimate:+.1f} days", f"{rm.ci_low:+.1f} to {rm.ci_high:+.1f}", boot)
            if ok
            else (TOO_FEW, TOO_FEW, boot)
        )
        rows["Weighted Cox: hazard ratio (below 1: re-referral slower)"] = (
            (f"{hr.estimate:.2f}", f"{hr.ci_low:.2f} to {hr.ci_high:.2f}", "robust (sandwich)")
            if ok and np.isfinite(hr.estimate) and hr.estimate > 0
            else (TOO_FEW, TOO_FEW, "robust (sandwich)")
        )
        out = pd.DataFrame.from_dict(
            rows, orient="index", columns=["Estimate", f"{self._level()} interval", "How the interval was worked out"]
        )
        out.index.name = None
        out.columns.name = "Comparison"
        if not self.naive_shown():
            out.attrs["note"] = (
                f"c: the simple comparison is hidden because a group has fewer than {self._threshold()} "
                "children re-referred (or not re-referred); with the group sizes it would give that "
                "number away."
            )
        if unstable:
            out.attrs["note"] = (
                out.attrs.get("note", "")
                + (" " if out.attrs.get("note") else "")
                + (
                    "An interval marked 'could not be worked out' came out wider than any difference in shares "
                    "can be (beyond 100 points either way): its variance calculation was numerically unstable on "
                    "these data, so only the estimate is shown. The other rows are unaffected."
                )
            )
        return out

    def balance_view(self) -> pd.DataFrame:
        """The love plot as a table: standardised differences before and after weighting."""
        b = self.balance.sort_values("smd_before", key=np.abs, ascending=False)
        out = pd.DataFrame(
            {
                "Before weighting": b["smd_before"].map(lambda v: f"{v:+.3f}").to_numpy(),
                "After weighting": b["smd_after"].map(lambda v: f"{v:+.3f}").to_numpy(),
                f"Balanced (under {BALANCE_CUTOFF})": np.where(b["smd_after"].abs() < BALANCE_CUTOFF, "yes", "no"),
            },
            index=[_term_label(c) for c in b["covariate"]],
        )
        out.columns.name = "Characteristic"
        return out

    def curve_table(self, days=(91, 182, 365)) -> pd.DataFrame:
        """Adjusted share re-referred by day, with intervals (no counts; cut below 10 at risk)."""
        s = self.survival
        rows = {}
        for d in days:
            i = int(np.searchsorted(s["day"].to_numpy(), d, side="right") - 1)
            row = {}
            for arm, label in (("treated", "With the intervention"), ("control", "Without")):
                ok = bool(s[f"{arm}_shown"].iloc[i])
                row[label] = (
                    f"{100 * (1 - s[f'{arm}_survival'].iloc[i]):.1f}% "
                    f"({100 * (1 - s[f'{arm}_ci_high'].iloc[i]):.1f} to {100 * (1 - s[f'{arm}_ci_low'].iloc[i]):.1f})"
                    if ok
                    else "too few to show"
                )
            rows[f"By day {d}"] = row
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.columns.name = f"Share re-referred ({self._level()} interval)"
        return out

    def refutation_table(self) -> pd.DataFrame:
        labels = {
            "placebo_treatment": "Replace the intervention by a random one (should give about no effect)",
            "random_common_cause": "Add a made-up random characteristic (should change little)",
            "data_subset": "Re-estimate on random 80% subsets (should change little)",
        }
        rows = {}
        for k, r in self.refutations.items():
            if "error" in r:
                rows[labels.get(k, k)] = ("", "", "", "could not run")
                continue
            allowed = (
                f"within {100 * r['limit']:.1f} points of {'zero' if k == 'placebo_treatment' else 'the estimate'}"
                if "limit" in r
                else ""
            )
            rows[labels.get(k, k)] = (
                f"{100 * r['estimated_effect']:+.1f} points",
                f"{100 * r['new_effect']:+.1f} points",
                allowed,
                {True: "yes", False: "no", None: "could not run"}[r.get("passed")],
            )
        out = pd.DataFrame.from_dict(
            rows, orient="index", columns=["Estimate before the change", "After the change", "Passes if", "Passed"]
        )
        out.columns.name = "Check"
        return out

    def refutation_words(self) -> str:
        ok = [r for r in self.refutations.values() if "error" not in r]
        if not self.refutations:
            return "The robustness checks were not run (refutation_simulations in the evaluation file is 0)."
        rows = ok[0]["rows"] if ok else 0
        sims = ok[0]["simulations"] if ok else 0
        passed = sum(1 for r in self.refutations.values() if r.get("passed"))
        return (
            f"Each check re-ran the weighting estimate of re-referral within "
            f"{self.parameters['horizon_days']} days on a random sample of {rows:,} closed cases, "
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

    def alt_text(self, figure: str) -> str:
        rd = self.effect["risk_difference"]
        if figure == "love":
            b = self.to_dict()["balance"]
            return (
                f"Dot plot of standardised differences for {len(self.balance)} characteristics: the largest was "
                f"{b['max_abs_smd_before']:.2f} before weighting and {b['max_abs_smd_after']:.2f} after."
            )
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
            f"(difference {100 * rd.estimate:.1f} points, {self._level()} interval {100 * rd.ci_low:.1f} to {100 * rd.ci_high:.1f})."
        )

    # ---- charts --------------------------------------------------------------------
    def love_plot(self):
        from insightlib.report.charts import DARK_BLUE, ORANGE, REFERENCE_GREY, new_figure

        b = self.balance.sort_values("smd_before", key=np.abs)
        after_max = b["smd_after"].abs().max() if len(b) else 0
        title = (
            f"After weighting, all characteristics are balanced (largest {after_max:.2f})"
            if after_max < BALANCE_CUTOFF
            else f"After weighting, the largest difference is still {after_max:.2f}"
        )
        fig, ax = new_figure(title, width=8.5, height=max(3.0, 0.22 * len(b) + 1.5))
        yy = np.arange(len(b))
        ax.scatter(b["smd_before"].abs(), yy, color=ORANGE, label="Before weighting", zorder=3)
        ax.scatter(b["smd_after"].abs(), yy, color=DARK_BLUE, label="After weighting", zorder=3)
        ax.axvline(0.1, color=REFERENCE_GREY, linestyle="--", label="0.1 (a common threshold)")
        ax.set_yticks(yy, [_term_label(c) for c in b["covariate"]], fontsize=8)
        ax.set_xlabel("Absolute standardised mean difference")
        ax.legend(loc="lower right", fontsize=8)
        return fig

    def overlap_plot(self):
        """Propensity scores of every episode at risk (before trimming), by group; the set-aside
        ranges shaded. Bins with fewer episodes than the disclosure threshold are blanked."""
        from insightlib.report.charts import DARK_BLUE, ORANGE, new_figure

        trimmed, total = self.overlap.get("trimmed_total", 0), self.counts["episodes"]
        title = (
            f"{trimmed / total:.0%} of closed cases were set aside for poor overlap between the groups"
            if trimmed
            else "Children who did and did not receive it overlapped across the range"
        )
        fig, ax = new_figure(title)
        bins = np.linspace(0, 1, 21)
        thr = self._threshold()
        for arm, colour, label in (("treated", ORANGE, "Received the intervention"), ("control", DARK_BLUE, "Did not")):
            ps = self._ps.get(arm, np.array([]))
            counts, _ = np.histogram(ps, bins=bins)
            counts = np.where(counts < thr, 0, counts)  # small cells suppressed
            share = counts / max(counts.sum(), 1)
            ax.stairs(share, bins, color=colour, label=label, linewidth=2)
        lo, hi = self.overlap.get("trim_low", 0.0), self.overlap.get("trim_high", 1.0)
        if lo > 0:
            ax.axvspan(0, lo, color="#E5E5E5", label="Set aside", zorder=0)
        if hi < 1:
            ax.axvspan(hi, 1, color="#E5E5E5", label=None if lo > 0 else "Set aside", zorder=0)
        ax.set_xlabel("Propensity score (estimated chance of receiving the intervention)")
        ax.set_ylabel("Share of group")
        ax.yaxis.set_major_formatter(_percent_formatter())
        ax.legend(fontsize=8)
        return fig

    def survival_plot(self):
        from insightlib.report.charts import DARK_BLUE, ORANGE, new_figure

        s = self.survival
        rd = self.effect["risk_difference"]
        if not self.estimable():
            title = (
                f"Adjusted re-referral curves up to day {self.parameters['horizon_days']}: a difference is {TOO_FEW}"
            )
        elif rd.ci_high < 0 or rd.ci_low > 0:
            word = "lower" if rd.estimate < 0 else "higher"
            title = f"Adjusted for who received it, re-referral was {abs(rd.estimate) * 100:.0f} points {word} by day {self.parameters['horizon_days']}"
        else:
            title = f"Adjusted for who received it, no clear difference in re-referral by day {self.parameters['horizon_days']}"
        fig, ax = new_figure(title)
        for arm, colour, label in (("treated", ORANGE, "With the intervention"), ("control", DARK_BLUE, "Without")):
            ok = s[f"{arm}_shown"]  # not drawn (a gap, not a flat line) where hidden
            ax.step(s["day"], (1 - s[f"{arm}_survival"]).where(ok), where="post", color=colour, label=label)
            ax.fill_between(
                s["day"],
                (1 - s[f"{arm}_ci_high"]).where(ok),
                (1 - s[f"{arm}_ci_low"]).where(ok),
                step="post",
                color=colour,
                alpha=0.15,
            )
        ax.set_xlabel("Days since the case closed")
        ax.set_ylabel("Share re-referred (weighted)")
        ax.set_ylim(0, None)
        ax.yaxis.set_major_formatter(_percent_formatter())
        ax.legend(fontsize=8)
        return fig

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
                f"({_points_range(nv.ci_low, nv.ci_high)}) among closed cases followed for the whole {h} days"
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
                f"**Simple comparison.** Not shown: a group has fewer than {self._threshold()} children re-referred (or not "
                "re-referred) among closed cases followed for the whole period, and with the group sizes the comparison "
                "would give that number away."
            )
        )
        lines = [f"**Finding.** {self.headline()} {meaning} {sure}".rstrip(), simple]
        if self.e_value.get("risk_ratio"):
            lines.append(f"**What would overturn it.** {self.evalue_words()}")
        return "\n\n".join(lines)


def _safe_split(treated: int, control: int, threshold: int) -> str:
    """'839 closed cases (38 who received the intervention, 801 who did not)', with a part below
    the threshold hidden together with whatever would give it away (the other part)."""
    total = treated + control
    if total == 0:
        return "No closed cases"
    if 0 < total < threshold:
        return f"Fewer than {threshold} closed cases"
    if 0 < treated < threshold or 0 < control < threshold:
        small = "received the intervention" if 0 < treated < threshold else "did not receive it"
        return f"{total:,} closed cases (fewer than {threshold} of them {small})"
    return f"{total:,} closed cases ({treated:,} who received the intervention, {control:,} who did not)"


def _points_range(lo: float, hi: float) -> str:
    """An interval of differences in words: 'between 3.9 and 12.6 points fewer'."""
    a, b = 100 * lo, 100 * hi
    if not (np.isfinite(a) and np.isfinite(b)):
        return TOO_FEW
    if b < 0:
        return f"between {abs(b):.1f} and {abs(a):.1f} points fewer"
    if a > 0:
        return f"between {a:.1f} and {b:.1f} points more"
    return f"from {abs(a):.1f} points fewer to {b:.1f} points more"


def _term_label(term: str) -> str:
    """'previous_referrals_group=3+' -> 'Previous referrals: 3+' (design-matrix names in words)."""
    name, _, level = str(term).partition("=")
    words = name.replace("_group", "").replace("_", " ").strip()
    words = {"referral nfa": "Referral closed with no further action", "disabled": "Has a disability"}.get(words, words)
    words = words[:1].upper() + words[1:]
    if name == "primary_need":
        from insightlib.contract import PRIMARY_NEED_LABELS

        level = f"{PRIMARY_NEED_LABELS[level].lower()} ({level})" if level in PRIMARY_NEED_LABELS else level
    return f"{words}: {level}" if level else words


def _percent_formatter():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1, decimals=None)


ASSUMPTIONS = (
    "**No unmeasured confounding.** Everything that influenced both who received the intervention and "
    "whether they came back is among the covariates (or blocked by them in the graph). If practitioners "
    "chose families on something not recorded, such as their judgement of risk, the estimate may be biased.",
    "**Positivity.** Every kind of child in the analysis had some chance of receiving the intervention and "
    "some chance of not. Children with almost no chance either way are trimmed, and the overlap plot shows what is left.",
    "**Consistency.** The intervention is one well-defined thing: a child who received it is counted the same "
    "whoever delivered it and however it went, and one child's intervention does not change another's re-referral.",
    "**Censoring.** Turning 18, death and moving council end follow-up like the extract date does; the survival "
    "estimates describe re-referral had those not happened, assuming they are unrelated to re-referral risk given the covariates.",
)
