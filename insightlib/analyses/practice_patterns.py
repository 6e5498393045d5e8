"""Practice patterns for one council: per episode, changes of allocated worker, weeks from referral to
assessment authorised, plan (none, child in need, child protection) and its length, the team that held the
case at closure; each in one Cox model of re-referral clustered by child, adjusted for need, age, previous
referrals and disability: association, not cause."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from insightlib import contract
from insightlib.analyses import rereferral
from insightlib.errors import InputError
from insightlib.stats import cox as cox_model


def episode_practice(tables: dict, episodes: pd.DataFrame) -> pd.DataFrame:
    """Per episode: its assessment, changes of worker, weeks to assessment, plan and plan length, team at closure."""
    ep = episodes.copy()
    asm = tables.get("assessments")
    out = pd.DataFrame(index=ep.index)
    if asm is not None and len(asm):
        a = asm.sort_values("start_date").drop_duplicates("referral_id")
        a = a.set_index("referral_id")
        out["assessed"] = ep["referral_id"].isin(a.index).to_numpy()
        auth = (
            ep["referral_id"].map(a["authorised_date"]) if "authorised_date" in a else pd.Series(pd.NaT, index=ep.index)
        )
        wk = (contract.as_datetime(auth) - contract.as_datetime(ep["referral_date"])).dt.days / 7
        out["weeks_to_assessment"] = wk.where(wk >= 0)
    else:
        out["assessed"] = False
        out["weeks_to_assessment"] = np.nan
    plans = tables.get("plans")
    plan = np.full(len(ep), "No plan", dtype=object)
    plan_months = np.zeros(len(ep))
    if plans is not None and len(plans):
        p = plans[plans["referral_id"].isin(set(ep["referral_id"]))].copy()
        end = contract.as_datetime(p["end_date"]).fillna(
            contract.as_datetime(p["referral_id"].map(ep.set_index("referral_id")["closure_date"]))
        )
        p["months"] = (end - contract.as_datetime(p["start_date"])).dt.days.clip(lower=0) / 30.44
        months = p.groupby("referral_id")["months"].sum()
        cp = set(p.loc[p["plan_type"] == "CP", "referral_id"])
        cin = set(p.loc[p["plan_type"] == "CIN", "referral_id"])
        rid = ep["referral_id"]
        plan = np.where(
            rid.isin(cp).to_numpy(),
            "Child protection plan",
            np.where(rid.isin(cin).to_numpy(), "Child in need plan", "No plan"),
        )
        plan_months = ep["referral_id"].map(months).fillna(0).to_numpy(float)
    out["plan"] = plan
    out["plan_months"] = plan_months
    al = tables.get("allocations")
    changes = np.zeros(len(ep))
    team = np.full(len(ep), "No allocation", dtype=object)
    if al is not None and len(al):
        e = ep[["la_code", "child_id", "referral_date", "closure_date"]].copy()
        e["_row"] = np.arange(len(ep))
        m = al[["la_code", "child_id", "worker_id", "start_date", "team"]].merge(e, on=["la_code", "child_id"])
        s = contract.as_datetime(m["start_date"])
        m = m[(s >= contract.as_datetime(m["referral_date"])) & (s <= contract.as_datetime(m["closure_date"]))]
        m = m.sort_values(["_row", "start_date"])
        n = m.groupby("_row").size()
        changes[n.index.to_numpy()] = n.to_numpy() - 1
        last = m.groupby("_row")["team"].last()
        team[last.index.to_numpy()] = last.fillna("Not recorded").astype(str).to_numpy()
    out["worker_changes"] = changes
    out["team"] = team
    return out


def previous_band(n) -> np.ndarray:
    return np.array(["0", "1", "2", "3+"], dtype=object)[np.minimum(np.asarray(n, dtype=int), 3)]


@dataclass
class Patterns:
    cox: object  # survival.CoxResult: worker changes, weeks to assessment, plan, plan length (+ adjustment)
    team_cox: object | None  # survival.CoxResult: team at closure (+ adjustment), a model of its own
    summary: pd.DataFrame  # measure, median / share among the episodes modelled
    episodes: int
    adjusted_for: list

    def to_dict(self) -> dict:
        return {
            "cox": self.cox.to_dict(),
            "team_cox": self.team_cox.to_dict() if self.team_cox is not None else None,
            "episodes": self.episodes,
            "adjusted_for": self.adjusted_for,
            "events": self.cox.events,
            "children": self.cox.clusters,
        }


#: In one model; the team is in a model of its own (teams follow plans: a child protection plan is
#: held by a safeguarding team, so the two cannot be told apart in one model).
PATTERN_TERMS = ("worker_changes", "weeks_to_assessment", "plan", "plan_months")
ADJUST_FOR = ("primary_need", "age_band", "previous_referrals_band", "disability")


def practice_patterns(ep: pd.DataFrame, min_group_size: int = 20) -> Patterns:
    """Cox model of re-referral on the practice measures, among assessed episodes, clustered by child."""
    d = ep[ep["assessed"] & ep["weeks_to_assessment"].notna()].copy()
    if len(d) < 50 or (d["event"] == 1).sum() < 10:
        raise InputError("Too few assessed episodes with a re-referral to relate practice patterns to re-referral.")
    cl = rereferral.child_key(d)
    X, refs = rereferral.cox_design(d, list(PATTERN_TERMS) + list(ADJUST_FOR), min_group_size=min_group_size)
    cox = cox_model.cox_ph(d["duration_days"], d["event"], X, clusters=cl)
    cox.references = refs
    team_cox = None
    if d["team"].nunique() > 1:
        Xt, trefs = rereferral.cox_design(d, ["team"] + list(ADJUST_FOR), min_group_size=min_group_size)
        if any(c.startswith("team[") for c in Xt.columns):
            team_cox = cox_model.cox_ph(d["duration_days"], d["event"], Xt, clusters=cl)
            team_cox.references = trefs
    summary = pd.DataFrame(
        [
            {"measure": "changes of allocated worker (median)", "value": float(d["worker_changes"].median())},
            {
                "measure": "changes of allocated worker (share with one or more)",
                "value": float((d["worker_changes"] > 0).mean()),
            },
            {
                "measure": "weeks from referral to assessment authorised (median)",
                "value": float(d["weeks_to_assessment"].median()),
            },
            {
                "measure": "months on a plan (median, among those on one)",
                "value": float(d.loc[d["plan"] != "No plan", "plan_months"].median())
                if (d["plan"] != "No plan").any()
                else np.nan,
            },
        ]
    )
    return Patterns(cox, team_cox, summary, int(len(d)), list(ADJUST_FOR))
