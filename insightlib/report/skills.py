"""Words, tables and charts for the skills gap report (from a ``SkillsGap``; no estimation here).

Written for careers service designers and leaders: plain sentences, intervals beside every
index, the crosswalk named as a judgement, and what the data cannot say.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from insightlib.report import charts, disclosure
from insightlib.analyses.skills import SkillsGap
from insightlib.analyses.skills_forecast import PROJECTION_LEVEL
from insightlib.analyses.skills_gap import LEVEL
from insightlib.contract import SOC_SUBMAJOR as SOC_NAMES
from insightlib.report.text import md
from insightlib.contract import DISCLOSURE_THRESHOLD

#: How many gaps the headline names, each way.
TOP = 5


def _pct(x: float, dp: int = 1) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{100 * x:.{dp}f}%"


def _num(x: float) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:,.0f}"


def _times(gap: float) -> str:
    """A gap index in words: e^gap times the share of demand to the share of learners."""
    r = float(np.exp(gap))
    return f"{r:.1f} times" if r >= 1 else f"{1 / r:.1f} times less"


def _interval(lo, hi, dp: int = 2) -> str:
    return f"{lo:+.{dp}f} to {hi:+.{dp}f}"


def _clearest(table: pd.DataFrame, clear: pd.Series):
    """The first TOP rows (the table is sorted by gap) whose interval is clear of 0."""
    return table[clear].head(TOP).itertuples()


def _short_of_learners(r, of: int) -> str:
    """One occupation short of learners, in words (r: a row of SkillsGap.occupations; of: how many ranked)."""
    return (
        f"**{md(r.occupation)}**: {_pct(r.demand_share)} of the area's demand, {_pct(r.supply_share)} of its FE learners "
        f"(about {_times(r.gap)} the share; gap index {r.gap:+.2f}, {LEVEL:.0%} interval {_interval(r.gap_ci_low, r.gap_ci_high)}; "
        f"ranked {r.rank_low}-{r.rank_high} of {of})."
    )


def _few_local_jobs(r) -> str:
    """One subject with more learners than local jobs, in words (r: a row of SkillsGap.subjects)."""
    return (
        f"**{md(r.subject)}**: {_pct(r.supply_share)} of the area's FE learners in subjects that lead to jobs, against "
        f"{_pct(r.demand_share)} of the jobs those subjects feed (gap index {r.gap:+.2f}, interval "
        f"{_interval(r.gap_ci_low, r.gap_ci_high)})."
    )


def _area_and_england(table: pd.DataFrame, area: str):
    """The area's row and England's in a comparison table (by ``comparator``); None where the area has none."""
    rows = table.set_index("comparator")
    return (rows.loc[area], rows.loc["England"]) if area in rows.index else None


def _employer_words(a, e) -> str:
    return (
        f"Employers reported {_num(a.ssv)} skill-shortage vacancies in 2019, {_pct(a.ssv_share_of_vacancies, 0)} "
        f"of their {_num(a.vacancies)} vacancies (England {_pct(e.ssv_share_of_vacancies, 0)}); "
        f"{a.ssv_per_1000_staff:.1f} per 1,000 staff against England's {e.ssv_per_1000_staff:.1f}."
    )


def _neet_words(year: int, a, e) -> str:
    return (
        f"In {year}, {a.neet_pct:.1f}% of 16-17 year olds were NEET and {a.participation_pct:.1f}% were in "
        f"education or training (England {e.neet_pct:.1f}% and {e.participation_pct:.1f}%)."
    )


@dataclass
class SkillsReport:
    result: SkillsGap
    threshold: int = DISCLOSURE_THRESHOLD
    rounding: int | None = None

    @property
    def area(self) -> str:
        return self.result.area.name

    # --- sentences --------------------------------------------------------------------------

    def short_of_learners(self) -> list[str]:
        """Occupations whose share of local jobs most exceeds their share of local learners (interval above 0)."""
        occ = self.result.occupations
        lines = [_short_of_learners(r, len(occ)) for r in _clearest(occ, occ["gap_ci_low"] > 0)]
        return lines or [f"No occupation's gap index is above 0 with {LEVEL:.0%} confidence."]

    def few_local_jobs(self) -> list[str]:
        """Subjects whose share of local learners most exceeds the share of local jobs they lead to."""
        sub = self.result.subjects
        lines = [_few_local_jobs(r) for r in _clearest(sub, sub["gap_ci_high"] < 0)]
        return lines or [f"No subject's gap index is below 0 with {LEVEL:.0%} confidence."]

    def _employer_headline(self) -> list[str]:
        """Skill-shortage vacancies in 2019 against England's (none where the survey has no row for the area)."""
        pair = _area_and_england(self.result.ess, self.area)
        return [_employer_words(*pair)] if pair else []

    def _neet_headline(self) -> list[str]:
        """The latest year's NEET and participation against England's (none for an area of county districts)."""
        neet = self.result.neet
        if not len(neet):
            return []
        year = neet["year"].max()
        pair = _area_and_england(neet[neet["year"] == year], self.area)
        return [_neet_words(int(year), *pair)] if pair else []

    def headlines(self) -> list[str]:
        r = self.result
        lines = []
        top = r.occupations.iloc[0]
        lines.append(
            f"The largest gap in {md(self.area)} is in **{md(top.occupation.lower())}**: their share of local jobs is "
            f"{_times(top.gap)} their share of local FE learners (gap index {top.gap:+.2f}, "
            f"{LEVEL:.0%} interval {_interval(top.gap_ci_low, top.gap_ci_high)})."
        )
        low = r.subjects.iloc[0]
        lines.append(
            f"The subject with the fewest local jobs for its learners is **{md(low.subject)}** "
            f"(gap index {low.gap:+.2f}, interval {_interval(low.gap_ci_low, low.gap_ci_high)})."
        )
        lines += self._employer_headline() + self._neet_headline()
        if len(r.neet_forecast) and r.neet_backtest.get("reliable"):
            f = r.neet_forecast.iloc[-1]
            lines.append(
                f"If recent years continue, about {f.forecast:.1f}% would be NEET in {int(f.year)} "
                f"({PROJECTION_LEVEL:.0%} prediction interval {f.low:.1f}% to {f.high:.1f}%)."
            )
        return lines

    def projection_sentences(self) -> list[str]:
        out = []
        for name, unit, fc_, back in (
            ("16-17 NEET", "points", self.result.neet_forecast, self.result.neet_backtest),
            ("online job adverts", "(file units)", self.result.adverts_forecast, self.result.adverts_backtest),
        ):
            if not back:
                continue
            chosen = back["chosen"]
            m = back["models"][chosen]
            other = back["models"]["trend" if chosen == "naive" else "naive"]
            text = (
                f"{name[0].upper() + name[1:]}: the {'straight-line trend' if chosen == 'trend' else 'last-value'} model was chosen by a back-test "
                f"on {m['series']} areas' series with the last {back['holdout_years']} years held out: median absolute error "
                f"{m['median_abs_error']:.2f} {unit} ({_pct(m['median_abs_pct_error'], 0)} of the value; the other model "
                f"{other['median_abs_error']:.2f}); its {PROJECTION_LEVEL:.0%} interval held the outcome {_pct(m['coverage'], 0)} of the time."
            )
            if not back["reliable"]:
                text += (
                    " That is well short of its nominal level, so no projection of this series is given as a forecast."
                )
            out.append(text)
        out.append(
            "Employment by occupation is not projected: five survey years (2017-2021) with margins of 30-50% "
            "for a district's smaller groups do not allow it; a supplied Skills Imperative projection serves instead."
        )
        return out

    def caveats(self) -> list[str]:
        r = self.result
        lines = [
            "**The crosswalk is a judgement.** No source links occupations to the subjects that lead to them; insight's "
            "crosswalk (SOC sub-major groups to FE sector subject areas, with weights and reasons, in "
            "`insightlib/reference/skills/occupation_subject_crosswalk.csv`) was written and reviewed for this purpose. "
            "A different judgement would move the index; the ranking intervals do not include that.",
            "**Supply here is adult FE.** The FE figures are education and training aims achieved in 2021/22 (probably "
            "provisional, August to April), by learners living in the area, rounded to 10 with '~' for fewer than 5. "
            "16-18 study programmes, sixth forms, universities and apprenticeships' subjects are not in them. "
            "Preparation for Life and Work (basic skills, ESOL) is left out because it feeds no particular occupation.",
            "**Demand is employment, not vacancies.** The index uses the Annual Population Survey's 2021 employment by "
            "occupation (a sample survey; its 95% intervals are carried into the index's), plus a projected requirement "
            "to 2035 only where one is supplied. Job adverts (ONS, Textkernel) cover online adverts only and changed "
            "method; by profession they are a single month (October 2022) for the wider LSIP area.",
            "**The Employer Skills Survey is from 2019**, before the pandemic; council figures rest on a few hundred "
            "establishments, and '**' cells are too small to publish.",
            "**Occupation groups are SOC2010** in the survey and SOC2020 in the projection; at the sub-major level they are "
            "treated as the same groups (SOC2020's group 63 is counted with 33).",
            "Every figure is a published aggregate (DfE, ONS); counts shown pass insight's disclosure control "
            f"(fewer than {self.threshold} shown as 'c').",
        ]
        lines += list(r.notes)
        return lines

    # --- tables -----------------------------------------------------------------------------

    def occupation_table(self) -> pd.DataFrame:
        o = self.result.occupations
        t = pd.DataFrame(
            {
                "Occupation (SOC sub-major group)": o["soc"] + " " + o["occupation"],
                "Employed (APS 2021)": o["employment"].map(_num),
                "95% margin": o["employment_ci95"].map(lambda v: f"±{v:,.0f}"),
                "Share of demand": o["demand_share"].map(_pct),
                "Share of FE learners": o["supply_share"].map(_pct),
                "Gap index": o["gap"].map(lambda v: f"{v:+.2f}"),
                f"{LEVEL:.0%} interval": [_interval(a, b) for a, b in zip(o["gap_ci_low"], o["gap_ci_high"])],
                "Rank (interval)": [f"{r} ({a}-{b})" for r, a, b in zip(o["rank"], o["rank_low"], o["rank_high"])],
                "Gap against England's": o["gap_vs_england"].map(lambda v: f"{v:+.2f}"),
            }
        )
        if o["neighbours_median_gap"].notna().any():
            t["Neighbours' median gap"] = o["neighbours_median_gap"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}")
        if o["requirement_2020_2035"].notna().any():
            pub = self.result.projection.set_index("soc")["publishable"] if self.result.projection is not None else None
            t.insert(
                3,
                "Requirement 2020-35",
                [
                    (_num(v) if pub is None or bool(pub.get(s, True)) else "under 10,000")
                    for s, v in zip(o["soc"], o["requirement_2020_2035"])
                ],
            )
        return t

    def projection_table(self) -> pd.DataFrame | None:
        """Skills Imperative 2035, where supplied: growth plus replacement demand per occupation (cells under 10,000 hidden)."""
        p = self.result.projection
        if p is None:
            return None
        hide = lambda v, ok: _num(v) if ok else "under 10,000"  # noqa: E731 - the publisher's rule, per cell
        return pd.DataFrame(
            {
                "Occupation (SOC2020 sub-major group)": p["soc"] + " " + p["soc"].map(SOC_NAMES),
                "Employed 2020": [hide(v, abs(v) >= 10_000) for v in p["employment_2020"]],
                "Employed 2035": [hide(v, abs(v) >= 10_000) for v in p["employment_2035"]],
                "Growth 2020-35": [hide(v, abs(v) >= 10_000) for v in p["net_change"]],
                "Replacement demand": [hide(v, abs(v) >= 10_000) for v in p["replacement_demand"]],
                "Total requirement": [hide(v, ok) for v, ok in zip(p["total_requirement"], p["publishable"])],
            }
        )

    def subject_table(self) -> pd.DataFrame:
        s = self.result.subjects
        counts = pd.DataFrame(
            {
                "subject": s["subject"],
                "fe": np.where(
                    s["fe_cells_fewer_than_5"] > 0, np.maximum(s["fe_achievements"], 1), s["fe_achievements"]
                ).astype(int),
            }
        )
        shown = disclosure.suppress_table(counts, ["fe"], self.threshold, self.rounding).display
        return pd.DataFrame(
            {
                "Sector subject area": s["subject"],
                "FE achievements 2021/22": shown["fe"].map(lambda v: v if isinstance(v, str) else f"{int(v):,}"),
                "Share of FE learners": s["supply_share"].map(_pct),
                "Share of the jobs it feeds": s["demand_share"].map(_pct),
                "Gap index": s["gap"].map(lambda v: f"{v:+.2f}"),
                f"{LEVEL:.0%} interval": [_interval(a, b) for a, b in zip(s["gap_ci_low"], s["gap_ci_high"])],
                "Rank (1 = most short of learners)": [
                    f"{r} ({a}-{b})" for r, a, b in zip(s["rank"], s["rank_low"], s["rank_high"])
                ],
                "Gap against England's": s["gap_vs_england"].map(lambda v: f"{v:+.2f}"),
                "Neighbours' median gap": s["neighbours_median_gap"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}"),
            }
        )

    def industry_table(self) -> pd.DataFrame:
        i = self.result.industries
        first, last = i.attrs.get("years", (None, None))
        return pd.DataFrame(
            {
                "Industry (APS)": i["industry"],
                f"Employed {last}": i[f"employed_{last}"].map(_num),
                "Share": i["share"].map(_pct),
                "England's share": i["england_share"].map(_pct),
                "Relative to England": i["relative_to_england"].round(2),
                f"Change since {first}": i["change"].map(lambda v: f"{v:+,.0f}"),
                f"England's change since {first}": i["england_change_pct"].map(lambda v: f"{100 * v:+.1f}%"),
            }
        )

    def industry_sentence(self) -> str:
        i = self.result.industries
        top = i.iloc[0]
        over = i.sort_values("relative_to_england", ascending=False).iloc[0]
        return (
            f"The largest sector is {md(top.industry.lower())} ({_pct(top.share, 0)} of employment; England "
            f"{_pct(top.england_share, 0)}). Compared with England, the area has most {md(over.industry.lower())} "
            f"({over.relative_to_england:.1f} times England's share). APS estimates: small groups have wide margins."
        )

    def occupation_trend_table(self) -> pd.DataFrame:
        """Employment by occupation group in each APS year (the survey's estimates, unrounded as published)."""
        t = self.result.employment_trend.pivot_table(index="soc", columns="year", values="employed", aggfunc="sum")
        t.index = [f"{s} {SOC_NAMES[s]}" for s in t.index]
        t.index.name = "Occupation"
        return t.map(_num)

    def neet_table(self) -> pd.DataFrame:
        n = self.result.neet
        if n.empty:
            return n
        return pd.DataFrame(
            {
                "Year": n["year"],
                "Area": n["comparator"],
                "NEET %": n["neet_pct"].round(1),
                "Not known %": n["not_known_pct"].round(1),
                "In education or training %": n["participation_pct"].round(1),
                "Apprenticeship %": n["apprenticeship_pct"].round(1),
            }
        )

    def employer_table(self) -> pd.DataFrame:
        e = self.result.ess
        return pd.DataFrame(
            {
                "Area": e["comparator"],
                "Establishments interviewed": e["establishments_interviewed"].map(_num),
                "Vacancies": e["vacancies"].map(_num),
                "Skill-shortage vacancies": e["ssv"].map(_num),
                "SSVs as % of vacancies": e["ssv_share_of_vacancies"].map(lambda v: _pct(v, 0)),
                "SSVs per 1,000 staff": e["ssv_per_1000_staff"].round(1),
                "Establishments with an SSV (95% interval)": [
                    f"{_pct(p, 1)} ({_pct(lo, 1)} to {_pct(hi, 1)})"
                    for p, lo, hi in zip(
                        e["share_establishments_with_ssv"],
                        e["ssv_establishments_ci_low"],
                        e["ssv_establishments_ci_high"],
                    )
                ],
            }
        )

    def apprenticeship_table(self) -> pd.DataFrame:
        a = self.result.apprenticeships
        counts = a[["year", "starts", "achievements"]].copy()
        shown = disclosure.suppress_table(counts, ["starts", "achievements"], self.threshold, self.rounding).display
        return pd.DataFrame(
            {
                "Academic year": a["year"],
                "Starts": shown["starts"].map(lambda v: v if isinstance(v, str) else f"{int(v):,}"),
                "Achievements": shown["achievements"].map(lambda v: v if isinstance(v, str) else f"{int(v):,}"),
                "England starts": a["england_starts"].map(_num),
            }
        )

    def profession_table(self, n: int = 10) -> pd.DataFrame:
        p = self.result.adverts_by_profession.head(n)
        return pd.DataFrame(
            {
                "Profession (adverts, October 2022)": p["profession"],
                "Adverts": p["adverts"].map(_num),
                "Share": p["share"].map(_pct),
                "England's share": p["england_share"].map(_pct),
                "Relative to England": p["relative_to_england"].round(2),
            }
        )

    def download(self, folder: str | Path) -> Path:
        """The gap index per occupation and per subject, with its inputs, as one CSV beside the report."""
        o = self.result.occupations.assign(unit="occupation", name=lambda d: d["soc"] + " " + d["occupation"])
        s = self.result.subjects.assign(unit="subject", name=lambda d: d["subject"])
        cols = [
            "unit",
            "name",
            "demand_share",
            "supply_share",
            "gap",
            "gap_ci_low",
            "gap_ci_high",
            "rank",
            "rank_low",
            "rank_high",
            "gap_vs_england",
            "gap_vs_england_ci_low",
            "gap_vs_england_ci_high",
        ]
        path = Path(folder) / "skills_gap_index.csv"
        path.parent.mkdir(parents=True, exist_ok=True)  # a hand run writes under reports/lab/
        pd.concat(
            [o[cols + ["employment", "employment_ci95", "fe_learners_apportioned"]], s[cols + ["fe_achievements"]]],
            ignore_index=True,
        ).to_csv(path, index=False)
        return path

    # --- charts -----------------------------------------------------------------------------

    def gap_chart(self):
        o = self.result.occupations.iloc[::-1]
        fig, ax = charts.new_figure(f"In {self.area}, which jobs are short of local learners?", height=7)
        y = np.arange(len(o))
        colours = [
            charts.DARK_BLUE if lo > 0 else charts.ORANGE if hi < 0 else charts.DARK_GREY
            for lo, hi in zip(o["gap_ci_low"], o["gap_ci_high"])
        ]
        ax.hlines(y, o["gap_ci_low"], o["gap_ci_high"], color=colours, lw=2)
        ax.scatter(o["gap"], y, color=colours, zorder=3)
        ax.axvline(0, color=charts.REFERENCE_GREY)
        ax.set_yticks(y, [t if len(t) < 45 else t[:43] + "…" for t in o["occupation"]], fontsize=8)
        ax.set_xlabel("Gap index: ln(share of demand / share of FE learners), with 95% interval")
        top = self.result.occupations.iloc[0]
        alt = (
            f"Dot-and-interval chart of the gap index for {len(o)} occupation groups in {self.area}. "
            f"Blue: more demand than learners with 95% confidence; orange: more learners than demand; grey: unclear. "
            f"The largest gap is {top.occupation} at {top.gap:+.2f}. The table below gives every value."
        )
        return fig, alt

    def subject_chart(self):
        s = self.result.subjects
        fig, ax = charts.new_figure(f"Share of learners and of the jobs each subject leads to, {self.area}", height=6)
        y = np.arange(len(s))
        ax.barh(y - 0.2, s["supply_share"] * 100, height=0.4, color=charts.TURQUOISE, label="Share of FE learners")
        ax.barh(
            y + 0.2, s["demand_share"] * 100, height=0.4, color=charts.DARK_BLUE, label="Share of the jobs it feeds"
        )
        ax.set_yticks(y, s["subject"], fontsize=8)
        ax.set_xlabel("Per cent")
        ax.legend(frameon=False, loc="lower right")
        first = s.iloc[0]
        alt = (
            f"Paired bar chart for {len(s)} sector subject areas in {self.area}: the share of FE learners beside the "
            f"share of the jobs the subject leads to. {first.subject} has {_pct(first.supply_share)} of learners and "
            f"{_pct(first.demand_share)} of jobs. The subject table gives every value."
        )
        return fig, alt

    def neet_chart(self):
        t, f = self.result.neet_trend, self.result.neet_forecast
        if t.empty:
            return None
        fig, ax = charts.new_figure(f"16-17 year olds NEET in {self.area}, with England", height=4)
        ax.plot(t["year"], t["neet_pct"], marker="o", color=charts.DARK_BLUE, label=self.area)
        ax.plot(t["year"], t["england_neet_pct"], marker="o", color=charts.REFERENCE_GREY, label="England")
        reliable = self.result.neet_backtest.get("reliable")
        if len(f) and reliable:
            ax.fill_between(
                f["year"],
                f["low"],
                f["high"],
                color=charts.DARK_BLUE,
                alpha=0.15,
                label=f"Projection, {PROJECTION_LEVEL:.0%} interval",
            )
            ax.plot(f["year"], f["forecast"], ls="--", color=charts.DARK_BLUE)
        ax.set_ylabel("Per cent NEET")
        ax.legend(frameon=False)
        last = t.dropna(subset=["neet_pct"]).iloc[-1]
        alt = (
            f"Line chart of the share of 16-17 year olds NEET in {self.area} and England, "
            f"{int(t['year'].min())} to {int(last.year)}: {self.area} {last.neet_pct:.1f}%, England {last.england_neet_pct:.1f}% "
            f"in {int(last.year)}"
            + (f"; a dashed projection to {int(f['year'].max())} with its interval." if len(f) and reliable else ".")
        )
        return fig, alt

    def adverts_chart(self):
        t = self.result.adverts
        if t.empty:
            return None
        fig, ax = charts.new_figure(f"Online job adverts in {self.area} against England's, 2019 = 100", height=4)
        ax.plot(t["year"], t["index_2019"], marker="o", color=charts.DARK_BLUE, label=self.area)
        ax.plot(
            t["year"],
            t["england_index_2019"],
            marker="o",
            color=charts.REFERENCE_GREY,
            label="England (regions' total)",
        )
        ax.axhline(100, color="#E5E5E5")
        ax.set_ylabel("Index (2019 = 100)")
        ax.legend(frameon=False)
        last = t.iloc[-1]
        alt = (
            f"Line chart of online job adverts indexed to 2019 = 100, {int(t['year'].min())} to {int(last.year)}: "
            f"{self.area} {last.index_2019:.0f} and England {last.england_index_2019:.0f} in {int(last.year)}."
        )
        return fig, alt
