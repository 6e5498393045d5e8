"""The skills gap index for an area: demand (APS employment, a Skills Imperative projection if supplied)
against supply (FE achievements through the occupation-to-subject crosswalk), by occupation and by
subject, with simulated intervals and ranks, England's index and the statistical neighbours' beside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from insightlib.analyses.skills_area import Area, among, neighbours, resolve_area
from insightlib.contract import SOC_SUBMAJOR, SSA_T1
from insightlib.errors import InputError
from insightlib.ingest import skills as src
from insightlib.stats import gap_index as gi

#: Subjects that feed no particular occupation (basic skills, ESOL, not known): left out of supply.
NON_OCCUPATIONAL_SUBJECTS = ("Preparation for Life and Work",)
#: The APS year used for current employment (the file's latest).
EMPLOYMENT_YEAR = 2021
#: A published '~' (fewer than 5) counts as this in point estimates (drawn from 0 to 5 in the simulation).
SMALL_CELL_MIDPOINT = 2.5
#: SOC2020's new group 63 (community and civil enforcement) is folded into 33 (protective service),
#: where SOC2010, the APS file's classification, had most of those jobs.
SOC2020_FOLD = {"63": "33"}
#: Simulation draws for the intervals.
DRAWS = 2000
#: Interval level for the index and ranks; projections use skills_forecast.PROJECTION_LEVEL.
LEVEL = 0.95
#: Skills Imperative 2035: the publisher's advice on the smallest cell to publish (people).
SKILLS_IMPERATIVE_MIN_CELL = 10_000


def occupation_employment(occ: pd.DataFrame, districts, year: int = EMPLOYMENT_YEAR) -> pd.DataFrame:
    """APS employment per SOC group summed over districts: estimate, 95% half-width, unpublished cap.

    Half-widths combine as the root of the sum of squares (districts' samples are independent).
    An estimate whose interval is not published ('u') is given a half-width equal to itself
    (a coefficient of variation of about 50%). A cell not published ('c', 'u', 'low') adds between 0 and the smallest estimate published
    for that district and year (the cap).
    """
    d = occ[(occ["year"] == year) & among(occ["area"], districts)].copy()
    smallest = d.groupby("area")["employed"].transform("min")
    d["cap"] = np.where(d["employed"].isna(), smallest, 0.0)
    # an estimate published without its interval ('u': unreliable) gets a half-width as large as itself
    d["ci95"] = d["ci95"].where(d["ci95"].notna() | d["employed"].isna(), d["employed"])
    d["var"] = d["ci95"].fillna(0) ** 2
    g = d.groupby("soc")[["employed", "var", "cap"]].sum().rename(columns={"cap": "unpublished"})
    g["ci95"] = np.sqrt(g.pop("var"))
    socs = [c for c in SOC_SUBMAJOR if c not in SOC2020_FOLD]
    return g.reindex(socs).fillna({"employed": 0.0, "ci95": 0.0, "unpublished": 0.0})


def fe_by_subject(fe: pd.DataFrame, districts=None) -> pd.DataFrame:
    """FE achievements per subject, summed over districts (England's own row when districts is None).

    ``achievements`` sums the published figures ('~' as 0, for display); ``achievements_mid``
    counts each '~' (fewer than 5) as 2.5, the middle of what it can be, for the index.
    """
    rows = (
        fe[fe["level"] == "country"]
        if districts is None
        else fe[(fe["level"] == "localAuthorityDistrict") & among(fe["area"], districts)]
    )
    rows = rows[rows["ssa"].isin(SSA_T1)].assign(
        midpoint=lambda d: d["achievements"].where(d["symbol"] != "~", SMALL_CELL_MIDPOINT)
    )
    g = rows.groupby("ssa").agg(
        achievements=("achievements", "sum"),
        achievements_mid=("midpoint", "sum"),
        suppressed_cells=("symbol", lambda s: int((s == "~").sum())),
    )
    return g.reindex(list(SSA_T1)).astype(float).fillna(0.0)


def _fe_draws(fe: pd.DataFrame, districts, subjects, draws: int, rng) -> np.ndarray:
    rows = fe[(fe["level"] == "localAuthorityDistrict") & among(fe["area"], districts) & fe["ssa"].isin(subjects)]
    cells = gi.draw_rounded_counts(rows["achievements"].to_numpy(), draws, rng)
    idx = {s: j for j, s in enumerate(subjects)}
    m = np.zeros((len(rows), len(subjects)))
    m[np.arange(len(rows)), rows["ssa"].map(idx).to_numpy()] = 1
    return cells @ m


def neighbour_gaps(tables: dict, area: Area, cw: pd.DataFrame, socs: list[str], subjects: list[str]) -> dict:
    """The gap index (point values, employment and FE only) of each statistical neighbour that is a single district.

    Returns the median over neighbours per occupation and per subject, and the neighbours used;
    for an area that is not one council, nothing.
    """
    if area.kind != "council":
        return {}
    occ_gaps, sub_gaps, used = [], [], []
    for code in neighbours(area.councils[0]):
        try:
            other = resolve_area(code, tables)
        except InputError:  # a county: its districts are not in the lookups
            continue
        emp = occupation_employment(tables["occupation"], other.districts)["employed"].to_numpy()
        fe = fe_by_subject(tables["fe"], other.districts).reindex(subjects)["achievements_mid"].to_numpy()
        if emp.sum() == 0 or fe.sum() == 0:
            continue
        occ_gaps.append(
            gi.gap_index({"employment": emp}, {"fe": gi.apportion_to_occupations(fe, cw, socs, subjects)})["gap"]
        )
        sub_gaps.append(
            gi.gap_index({"employment": gi.allocate_to_subjects(emp, cw, socs, subjects)}, {"fe": fe})["gap"]
        )
        used.append(code)
    if not used:
        return {}
    return {
        "councils": used,
        "occupations": dict(zip(socs, np.median(occ_gaps, axis=0))),
        "subjects": dict(zip(subjects, np.median(sub_gaps, axis=0))),
    }


@dataclass
class GapInputs:
    """Demand and supply for the area and for England: the point values and their simulated draws.

    Built together on purpose: the point values, the draws and the England comparison must use the same
    inputs, and the draws the same random numbers in the same order, whatever is reported from them."""

    employment: pd.DataFrame  # the area's occupation_employment
    fe: pd.DataFrame  # the area's fe_by_subject, for the subjects used
    demand: dict  # name -> per occupation (employment, and the projection's requirement if supplied)
    demand_england: dict
    fe_england: np.ndarray
    demand_draws: dict
    demand_england_draws: dict
    fe_draws: np.ndarray
    fe_england_draws: np.ndarray


def gap_inputs(tables: dict, area: Area, subjects: list[str], requirement, draws: int, rng) -> GapInputs:
    """The area's and England's demand and supply, with ``draws`` simulated sets (survey error for APS
    employment, rounding for FE counts); ``requirement`` is the projection's per occupation, or None."""
    occ = tables["occupation"]
    emp = occupation_employment(occ, area.districts)
    emp_e = occupation_employment(occ, tables["geography"]["lad_name"])
    fe_area = fe_by_subject(tables["fe"], area.districts).reindex(subjects)
    fe_eng = fe_by_subject(tables["fe"]).reindex(subjects)
    demand = {"employment": emp["employed"].to_numpy()}
    d_draws = {"employment": gi.draw_survey_estimates(emp["employed"], emp["ci95"], draws, rng, emp["unpublished"])}
    de_draws = {
        "employment": gi.draw_survey_estimates(emp_e["employed"], emp_e["ci95"], draws, rng, emp_e["unpublished"])
    }
    if requirement is not None:
        demand["requirement"] = requirement
        d_draws["requirement"] = np.broadcast_to(requirement, (draws, len(requirement)))
    return GapInputs(
        employment=emp,
        fe=fe_area,
        demand=demand,
        demand_england={"employment": emp_e["employed"].to_numpy()},
        fe_england=fe_eng["achievements_mid"].to_numpy(),
        demand_draws=d_draws,
        demand_england_draws=de_draws,
        fe_draws=_fe_draws(tables["fe"], area.districts, subjects, draws, rng),
        fe_england_draws=gi.draw_rounded_counts(fe_eng["achievements_mid"].to_numpy(), draws, rng),
    )


def projection_requirement(projection, socs: list[str], area: Area, notes: list[str]) -> tuple[pd.DataFrame, str]:
    """The Skills Imperative 2035 projection supplied, per occupation (SOC2020's 63 folded into 33), and
    the area it is for; a note where that is not the area asked for."""
    raw = src.read_skills_imperative(projection, min_published=SKILLS_IMPERATIVE_MIN_CELL)
    raw["soc"] = raw["soc"].replace(SOC2020_FOLD)
    numeric = ["employment_2020", "employment_2035", "net_change", "replacement_demand", "total_requirement"]
    proj = raw.groupby("soc").agg({**{c: "sum" for c in numeric}, "area": "first"}).reindex(socs)
    proj["publishable"] = proj["total_requirement"].abs() >= SKILLS_IMPERATIVE_MIN_CELL
    proj_area = str(proj["area"].dropna().iloc[0]) if proj["area"].notna().any() else ""
    if proj_area and src.name_key(proj_area) not in {src.name_key(area.name), src.name_key(area.lsip)}:
        notes.append(
            f"The projection supplied is for {proj_area}, not {area.name}; it is used as the wider area's outlook."
        )
    return proj, proj_area


def gap_tables(
    tables: dict,
    area: Area,
    cw: pd.DataFrame,
    socs: list[str],
    subjects: list[str],
    projection,
    demand_weights: dict | None,
    draws: int,
    rng: np.random.Generator,
    notes: list[str],
):
    """The gap index by occupation and by subject, with simulated intervals, ranks and England's index beside.

    Returns (occupations, subjects, projection, its area)."""
    if fe_by_subject(tables["fe"], area.districts).reindex(subjects)["achievements"].sum() == 0:
        raise InputError(f"area {area.name}: no FE achievements found for its districts ({', '.join(area.districts)}).")
    proj, proj_area, requirement = None, "", None
    if projection:
        proj, proj_area = projection_requirement(projection, socs, area, notes)
        requirement = proj["total_requirement"].fillna(0).clip(lower=0).to_numpy()
        proj = proj.reset_index()
        # England has no Skills Imperative projection here: England's index uses employment alone,
        # so "relative to England" compares like with like only where no projection is supplied.
        notes.append("With a projection, England's index (employment only) is a looser comparison for the area's.")
    inputs = gap_inputs(tables, area, subjects, requirement, draws, rng)
    occupations = occupation_gaps(inputs, cw, socs, subjects, demand_weights)
    return occupations, subject_gaps(inputs, cw, socs, subjects, demand_weights), proj, proj_area


def occupation_gaps(inputs: GapInputs, cw: pd.DataFrame, socs, subjects, demand_weights) -> pd.DataFrame:
    """Per occupation: its inputs, shares, gap index with interval, rank interval and the gap against
    England's; supply apportioned from subjects to occupations. Largest gap first."""

    def supply(fe_counts):
        return gi.apportion_to_occupations(fe_counts, cw, socs, subjects)

    emp, fe_mid = inputs.employment, inputs.fe["achievements_mid"].to_numpy()
    point = gi.gap_index(inputs.demand, {"fe": supply(fe_mid)}, demand_weights)
    point_e = gi.gap_index(inputs.demand_england, {"fe": supply(inputs.fe_england)})
    sim = gi.gap_index(inputs.demand_draws, {"fe": supply(inputs.fe_draws)}, demand_weights)
    sim_e = gi.gap_index(inputs.demand_england_draws, {"fe": supply(inputs.fe_england_draws)})
    out = pd.DataFrame(
        {
            "soc": socs,
            "occupation": [SOC_SUBMAJOR[s] for s in socs],
            "employment": emp["employed"].to_numpy(),
            "employment_ci95": emp["ci95"].to_numpy(),
            "employment_unpublished_up_to": emp["unpublished"].to_numpy(),
            "requirement_2020_2035": inputs.demand.get("requirement", np.full(len(socs), np.nan)),
            "fe_learners_apportioned": supply(fe_mid),
            "demand_share": point["demand_share"],
            "supply_share": point["supply_share"],
            "england_demand_share": point_e["demand_share"],
            "england_supply_share": point_e["supply_share"],
        }
    )
    summary = gi.summarise_draws(point["gap"], sim["gap"], LEVEL)
    out["gap"] = summary["value"].to_numpy()
    out[["gap_ci_low", "gap_ci_high", "rank", "rank_low", "rank_high", "prob_positive"]] = summary[
        ["ci_low", "ci_high", "rank", "rank_low", "rank_high", "prob_positive"]
    ].to_numpy()
    rel = gi.summarise_draws(point["gap"] - point_e["gap"], sim["gap"] - sim_e["gap"], LEVEL)
    out["gap_vs_england"] = rel["value"].to_numpy()
    out["gap_vs_england_ci_low"] = rel["ci_low"].to_numpy()
    out["gap_vs_england_ci_high"] = rel["ci_high"].to_numpy()
    out = out.sort_values("gap", ascending=False).reset_index(drop=True)
    for c in ("rank", "rank_low", "rank_high"):
        out[c] = out[c].astype(int)
    return out


def subject_gaps(inputs: GapInputs, cw: pd.DataFrame, socs, subjects, demand_weights) -> pd.DataFrame:
    """Per subject: demand allocated from occupations to subjects against the subject's own learners, with
    the same intervals and ranks. Smallest gap (most learners for the jobs) first."""

    def gap(d_occ, fe_counts):
        return gi.gap_index(
            {k: gi.allocate_to_subjects(v, cw, socs, subjects) for k, v in d_occ.items()},
            {"fe": fe_counts},
            demand_weights,
        )

    fe = inputs.fe
    sp = gap(inputs.demand, fe["achievements_mid"].to_numpy())
    spe = gap(inputs.demand_england, inputs.fe_england)
    ss = gap(inputs.demand_draws, inputs.fe_draws)
    sse = gap(inputs.demand_england_draws, inputs.fe_england_draws)
    ssum = gi.summarise_draws(sp["gap"], ss["gap"], LEVEL)
    srel = gi.summarise_draws(sp["gap"] - spe["gap"], ss["gap"] - sse["gap"], LEVEL)
    out = pd.DataFrame(
        {
            "subject": subjects,
            "fe_achievements": fe["achievements"].to_numpy(),
            "fe_achievements_used": fe["achievements_mid"].to_numpy(),
            "fe_cells_fewer_than_5": fe["suppressed_cells"].astype(int).to_numpy(),
            "jobs_allocated": gi.allocate_to_subjects(inputs.employment["employed"].to_numpy(), cw, socs, subjects),
            "demand_share": sp["demand_share"],
            "supply_share": sp["supply_share"],
            "gap": ssum["value"],
            "gap_ci_low": ssum["ci_low"],
            "gap_ci_high": ssum["ci_high"],
            "rank": ssum["rank"],
            "rank_low": ssum["rank_low"],
            "rank_high": ssum["rank_high"],
            "prob_positive": ssum["prob_positive"],
            "gap_vs_england": srel["value"],
            "gap_vs_england_ci_low": srel["ci_low"],
            "gap_vs_england_ci_high": srel["ci_high"],
        }
    )
    return out.sort_values("gap").reset_index(drop=True)
