"""The skills gap for one area: published demand and supply in, a result object out (no words).

An area is a council (3-digit code; one whose area is a single district: metropolitan,
unitary or London borough), a Local Skills Improvement Plan area or a mayoral combined
authority (by name). District-level sources are summed over the area's districts; council-
level sources (Employer Skills Survey, NEET) over its councils.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from insightlib.analyses import skills_comparisons as comparisons
from insightlib.analyses.skills_area import Area, among, resolve_area
from insightlib.analyses.skills_forecast import PROJECTION_LEVEL, adverts_trend, neet_trend
from insightlib.analyses.skills_gap import (
    DRAWS,
    EMPLOYMENT_YEAR,
    LEVEL,
    NON_OCCUPATIONAL_SUBJECTS,
    SOC2020_FOLD,
    gap_tables,
    neighbour_gaps,
)
from insightlib.contract import SOC_SUBMAJOR, SSA_T1
from insightlib.errors import InputError
from insightlib.ingest import fingerprint
from insightlib.ingest import skills as src

# --- the result --------------------------------------------------------------------------------


@dataclass
class SkillsGap:
    """Everything the skills report says, as numbers."""

    area: Area
    occupations: pd.DataFrame  # per SOC sub-major group: inputs, shares, gap with interval and rank interval
    subjects: pd.DataFrame  # per sector subject area: the same
    employment_trend: pd.DataFrame  # area, soc, year, employed
    industries: pd.DataFrame  # per industry: employment, share against England's, change since the first year
    fe: pd.DataFrame  # per subject: achievements in the area and in England (published, rounded)
    apprenticeships: pd.DataFrame  # year, starts, achievements (area) and England
    adverts: pd.DataFrame  # year, area index and England's region's
    adverts_forecast: pd.DataFrame
    adverts_backtest: dict
    adverts_by_profession: pd.DataFrame
    neet: pd.DataFrame  # comparison table 2022-2023 (area, region, England, neighbours)
    neet_trend: pd.DataFrame
    neet_forecast: pd.DataFrame
    neet_backtest: dict
    ess: pd.DataFrame  # comparison table (area, region, England, neighbours)
    projection: pd.DataFrame | None = None
    projection_area: str = ""
    notes: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        rec = lambda df: None if df is None else df.replace({np.nan: None}).to_dict(orient="records")  # noqa: E731
        return {
            "area": self.area.to_dict(),
            "gap_index": {
                "occupations": rec(self.occupations),
                "subjects": rec(self.subjects),
                "definition": "ln(demand share / supply share); shares with 0.5 added per cell; see docs/skills.md",
                "level": LEVEL,
                "draws": self.parameters.get("draws"),
            },
            "demand": {
                "employment_trend": rec(self.employment_trend),
                "industries": rec(self.industries),
                "adverts": rec(self.adverts),
                "adverts_by_profession": rec(self.adverts_by_profession),
                "projection": rec(self.projection),
                "projection_area": self.projection_area,
            },
            "supply": {
                "fe_achievements": rec(self.fe),
                "apprenticeships": rec(self.apprenticeships),
                "neet": rec(self.neet),
                "neet_trend": rec(self.neet_trend),
            },
            "employers": {"ess_2019": rec(self.ess)},
            "projections": {
                "adverts": {"forecast": rec(self.adverts_forecast), "backtest": self.adverts_backtest},
                "neet": {"forecast": rec(self.neet_forecast), "backtest": self.neet_backtest},
                "level": PROJECTION_LEVEL,
            },
            "notes": list(self.notes),
        }


# --- the analysis ------------------------------------------------------------------------------


def analyse(
    area_spec,
    *,
    data: str | Path = src.REFERENCE,
    projection: str | Path | None = None,
    demand_weights: dict | None = None,
    draws: int = DRAWS,
    seed: int = 2035,
) -> SkillsGap:
    """The skills gap for an area, from the shipped published data (or a folder of the same files)."""
    tables = src.load_tables(data)
    area = resolve_area(area_spec, tables)
    cw = src.crosswalk()
    bad = src.check_crosswalk(cw)
    if bad:
        raise InputError("The occupation-to-subject crosswalk is not valid: " + "; ".join(bad))
    socs = [c for c in SOC_SUBMAJOR if c not in SOC2020_FOLD]
    subjects = [s for s in SSA_T1 if s not in NON_OCCUPATIONAL_SUBJECTS]
    rng = np.random.default_rng(seed)
    notes: list[str] = []

    occupations, subjects_df, proj, proj_area = gap_tables(
        tables, area, cw, socs, subjects, projection, demand_weights, draws, rng, notes
    )
    near = _beside_neighbours(tables, area, cw, socs, subjects, occupations, subjects_df, notes)
    return SkillsGap(
        area=area,
        occupations=occupations,
        subjects=subjects_df,
        **_context(tables, area, notes),
        projection=proj,
        projection_area=proj_area,
        notes=notes,
        parameters={
            "area": str(area_spec),
            "data": str(data),
            "projection": str(projection) if projection else None,
            "demand_weights": demand_weights,
            "draws": draws,
            "seed": seed,
            "employment_year": EMPLOYMENT_YEAR,
            "neighbours_in_index": near.get("councils", []),
        },
    )


def _context(tables: dict, area: Area, notes: list[str]) -> dict:
    """The SkillsGap's context fields: employment by occupation over time and by industry, FE and
    apprenticeships, adverts and NEET (with their projections), the Employer Skills Survey."""
    occ = tables["occupation"]
    adv, adv_fc, adv_back = adverts_trend(tables["adverts"], area)
    nt, nt_fc, nt_back = (
        neet_trend(tables["neet_trend"], area) if area.councils else (pd.DataFrame(), pd.DataFrame(), {})
    )
    if not area.councils:
        notes.append(
            f"{area.name} includes districts of county councils, so council-level figures (NEET, the Employer "
            "Skills Survey) are not summed for it."
        )
    return {
        "employment_trend": occ[among(occ["area"], area.districts)]
        .groupby(["year", "soc"], as_index=False)["employed"]
        .sum(),
        "industries": comparisons.industry_comparison(
            tables["industry"], area.districts, tables["geography"]["lad_name"]
        ),
        "fe": comparisons.fe_comparison(tables["fe"], area.districts),
        "apprenticeships": comparisons.apprenticeship_comparison(tables["apprenticeships"], area.districts),
        "adverts": adv,
        "adverts_forecast": adv_fc,
        "adverts_backtest": adv_back,
        "adverts_by_profession": comparisons.adverts_by_profession(tables["adverts_profession"], area),
        "neet": comparisons.neet_comparison(tables["neet"], area) if area.councils else pd.DataFrame(),
        "neet_trend": nt,
        "neet_forecast": nt_fc,
        "neet_backtest": nt_back,
        "ess": comparisons.ess_comparison(tables["ess"], area),
    }


def _beside_neighbours(tables: dict, area: Area, cw, socs, subjects, occupations, by_subject, notes) -> dict:
    """The statistical neighbours' median index beside the area's (a column in each table, and a note)."""
    near = neighbour_gaps(tables, area, cw, socs, subjects)
    occupations["neighbours_median_gap"] = occupations["soc"].map(near.get("occupations", {}))
    by_subject["neighbours_median_gap"] = by_subject["subject"].map(near.get("subjects", {}))
    if near:
        notes.append(
            f"Statistical neighbours' index: the median over {len(near['councils'])} of the ten neighbours "
            "(those that are single districts), from employment and FE alone."
        )
    return near


def data_fingerprint(data: str | Path = src.REFERENCE) -> str:
    """What data made the figures: a hash of the contract tables used (shipped or read)."""
    return fingerprint.frames_fingerprint(src.load_tables(data))
