"""The intervention analysis's frame: one row per closed episode at risk of re-referral, with whether the
referral had the intervention, the two outcomes (time to re-referral; re-referral within the horizon where
follow-up allows) and the covariates the evaluation file names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from insightlib.analyses.intervention_parameters import COVARIATES, _suggest
from insightlib.contract import ETHNICITY_GROUP, age_band, as_datetime
from insightlib.errors import InputError
from insightlib.ingest.episodes import at_risk, build_episodes, eighteenth_birthday


def analysis_frame(
    tables: dict[str, pd.DataFrame],
    intervention: str,
    horizon_days: int,
    covariates: list[str],
    *,
    episodes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per episode at risk of re-referral, with treatment, outcomes and covariates.

    ``treatment`` is 1 when the referral that closed had the intervention: an
    interventions row with that referral_id, or for the same child starting between the
    referral and closure dates. ``time``/``event`` are the survival outcome (days from
    closure; event 1 re-referral; censoring at the extract date and competing events,
    turning 18, death, transfer, both count as censoring). ``outcome_binary`` is
    re-referral within the horizon, known only for episodes re-referred within it or
    followed for the full horizon (others NaN: excluded from the yes/no analysis).
    """
    episodes = at_risk(build_episodes(tables) if episodes is None else episodes)
    if len(episodes) == 0:
        raise InputError(
            "There are no closed episodes at risk of re-referral in this council's data, so the intervention effect cannot be estimated."
        )
    ep = episodes.reset_index(drop=True)
    treated = _received(ep, _intervention_rows(tables, intervention))
    out = _outcomes(tables, ep, treated, int(horizon_days))
    _add_covariates(out, tables, ep, covariates)
    out.attrs["horizon_days"] = int(horizon_days)
    out.attrs["intervention"] = str(intervention)
    return out


def _intervention_rows(tables, intervention: str) -> pd.DataFrame:
    """The interventions table's rows for this intervention (names compared without case or surrounding spaces)."""
    iv = tables.get("interventions")
    if iv is None or len(iv) == 0:
        raise InputError(
            "interventions: the table is missing or empty, so nobody can be counted as having received the intervention."
        )
    names = iv["intervention"].astype(str).str.strip()
    mask = names.str.casefold() == str(intervention).strip().casefold()
    if not mask.any():
        available = sorted(names.unique())
        raise InputError(
            f"interventions: no rows for intervention '{intervention}'.{_suggest(intervention, available)} "
            f"Recorded interventions: {', '.join(available[:20])}."
        )
    return iv.loc[mask]


def _received(ep: pd.DataFrame, iv: pd.DataFrame) -> np.ndarray:
    """Whether each episode's referral had the intervention: by referral_id, or by date (an intervention for
    the same child starting while the referral was open)."""
    treated = np.zeros(len(ep), dtype=bool)
    if "referral_id" in iv.columns:
        ids = set(iv["referral_id"].dropna().astype(str))
        treated |= ep["referral_id"].astype(str).isin(ids).to_numpy()
    referrals = pd.DataFrame(
        {
            "row": np.arange(len(ep)),
            "la_code": ep["la_code"].astype(str).to_numpy(),
            "child_id": ep["child_id"].astype(str).to_numpy(),
            "ref": as_datetime(ep["referral_date"]).to_numpy(),
            "clo": as_datetime(ep["closure_date"]).to_numpy(),
        }
    )
    starts = pd.DataFrame(
        {
            "la_code": iv["la_code"].astype(str).to_numpy(),
            "child_id": iv["child_id"].astype(str).to_numpy(),
            "start": as_datetime(iv["start_date"]).to_numpy(),
        }
    )
    m = referrals.merge(starts, on=["la_code", "child_id"], how="inner")
    treated[m.loc[(m["start"] >= m["ref"]) & (m["start"] <= m["clo"]), "row"].to_numpy()] = True
    return treated


def _outcomes(tables, ep: pd.DataFrame, treated: np.ndarray, horizon: int) -> pd.DataFrame:
    """The frame's treatment and outcome columns: time to re-referral (competing events censor) and
    re-referral within the horizon, known only where follow-up could cover the horizon."""
    days = ep["duration_days"].to_numpy().astype(float)
    event = ep["event"].to_numpy().astype(int)
    rereferred = event == 1
    followup = _potential_followup(tables, ep)
    within = np.where(followup >= horizon, (rereferred & (days <= horizon)).astype(float), np.nan)
    return pd.DataFrame(
        {
            "la_code": ep["la_code"].astype(str).to_numpy(),
            "child_id": ep["child_id"].astype(str).to_numpy(),
            "treatment": treated.astype(int),
            "time": days,
            "event": rereferred.astype(int),
            "competing": (event == 2).astype(int),
            "followup": followup,
            "outcome_binary": within,
            "closure_date": as_datetime(ep["closure_date"]).to_numpy(),  # for the scenarios' volumes per year
        }
    )


def _add_covariates(out: pd.DataFrame, tables, ep: pd.DataFrame, covariates) -> None:
    """The named covariates as model-ready columns: categories as text ('missing' for none), yes/no as 0/1,
    numbers with missing values set to the median."""
    derived = _derived_covariates(tables, ep, covariates)
    for c in covariates:
        if c not in COVARIATES:
            raise InputError(f"unknown covariate '{c}'.{_suggest(c, COVARIATES)}")
        kind = COVARIATES[c][0]
        col = derived[c] if c in derived else ep[c]
        if kind == "category":
            out[c] = pd.Series(col).astype("object").where(pd.Series(col).notna(), "missing").astype(str).to_numpy()
        elif kind == "binary":
            out[c] = pd.Series(col).fillna(False).astype(bool).astype(int).to_numpy()
        else:
            v = pd.to_numeric(pd.Series(col), errors="coerce").astype(float)
            if v.isna().all():
                raise InputError(
                    f"covariate '{c}' has no values in this council's data; remove it from the evaluation file."
                )
            out[c] = v.fillna(v.median()).to_numpy()


def _potential_followup(tables, ep: pd.DataFrame) -> np.ndarray:
    """Days from closure to the end of possible observation (extract date or 18th birthday),
    known for every episode whether or not it was re-referred.

    The yes/no outcome uses only episodes whose possible observation covers the horizon.
    Selecting instead on "re-referred before censoring or followed to the horizon" would
    over-represent re-referrals (an early re-referral is seen even when follow-up was short)."""
    closure = as_datetime(ep["closure_date"])
    councils = tables.get("councils") if tables else None
    if councils is not None and len(councils) and "extract_date" in councils.columns:
        extract = as_datetime(
            councils.drop_duplicates("la_code").set_index(councils.drop_duplicates("la_code")["la_code"].astype(str))[
                "extract_date"
            ]
        )
        end = ep["la_code"].astype(str).map(extract)
    else:  # no councils table: the latest end of observation in the data stands in for the extract date
        end = as_datetime(ep["end_date"]).groupby(ep["la_code"].astype(str)).transform("max")
    end = as_datetime(end)
    if "date_of_birth" in ep.columns:
        b18 = eighteenth_birthday(ep["date_of_birth"])
        end = end.where(b18.isna() | (end <= b18), b18)
    return ((end - closure).dt.days).to_numpy(dtype=float)


def _derived_covariates(tables, ep: pd.DataFrame, covariates) -> dict[str, Any]:
    """Covariates made from the episodes and the other tables (groupings, assessments, plans), only those asked for."""
    out: dict[str, Any] = {}
    want = set(covariates)
    if "ethnic_group" in want:
        out["ethnic_group"] = ep["ethnicity"].map(ETHNICITY_GROUP).fillna("Not known").to_numpy()
    if "age_group" in want:
        out["age_group"] = age_band(pd.to_numeric(ep["age_at_closure"], errors="coerce").to_numpy())
    if "previous_referrals_group" in want:
        prev = pd.to_numeric(ep["previous_referrals"], errors="coerce").fillna(0).to_numpy()
        out["previous_referrals_group"] = np.where(prev >= 3, "3+", prev.astype(int).astype(str))
    if "disabled" in want:
        out["disabled"] = (ep["disability"].astype(str).str.upper() != "NONE").to_numpy()
    if "closure_year" in want:
        out["closure_year"] = as_datetime(ep["closure_date"]).dt.year.to_numpy()
    rid = ep["referral_id"].astype(str)
    if want & {"had_assessment", "assessment_factors"}:
        a = tables.get("assessments")
        if a is None or len(a) == 0:
            out["had_assessment"] = np.zeros(len(ep), bool)
            out["assessment_factors"] = np.zeros(len(ep))
        else:
            a = a.assign(referral_id=a["referral_id"].astype(str))
            out["had_assessment"] = rid.isin(set(a["referral_id"])).to_numpy()
            if "factors" in a.columns:
                nf = a["factors"].fillna("").astype(str).map(lambda s: len([x for x in s.split(";") if x.strip()]))
                per = nf.groupby(a["referral_id"]).max()
                out["assessment_factors"] = rid.map(per).fillna(0).to_numpy()
            else:
                out["assessment_factors"] = np.zeros(len(ep))
    if want & {"had_cin_plan", "had_cp_plan"}:
        p = tables.get("plans")
        for kind, col in (("CIN", "had_cin_plan"), ("CP", "had_cp_plan")):
            if p is None or len(p) == 0:
                out[col] = np.zeros(len(ep), bool)
            else:
                ids = set(p.loc[p["plan_type"].astype(str).str.upper() == kind, "referral_id"].astype(str))
                out[col] = rid.isin(ids).to_numpy()
    return out
