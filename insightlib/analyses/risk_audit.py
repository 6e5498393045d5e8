"""The risk model audit for one council: closed cases with what was known at closure, the
time-based split, the two models fitted and judged (insightlib.stats.risk_audit), the verdict.

Only aggregates come out (RiskAudit): the per-child scores live inside ``audit`` and are dropped."""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from insightlib.analyses.notebook import REPORT_PARAMETERS, notebook_variables, refuse_parameters
from insightlib.contract import DISCLOSURE_THRESHOLD, ETHNICITY_GROUP, as_datetime
from insightlib.errors import EvaluationFileError, InputError
from insightlib.ingest.episodes import at_risk, build_episodes
from insightlib.report import risk_audit_disclosure
from insightlib.report.risk_audit_disclosure import COUNT_METRICS
from insightlib.stats import risk_audit as ra
from insightlib.stats import risk_verdict as rv
from insightlib.stats.threads import one_thread

#: What a model may use: known at the case's closure (docs/risk-audit.md).
FEATURES = {
    "age_at_closure": "age in years when the case closed",
    "previous_referrals": "number of the child's referrals before this one",
    "primary_need": "primary need code N0-N9",
    "referral_source": "who made the referral",
    "referral_nfa": "referral closed with no further action",
    "had_assessment": "the referral had an assessment",
    "assessment_factors": "number of factors recorded at assessment",
    "had_cin_plan": "the referral led to a child in need plan",
    "had_cp_plan": "the referral led to a child protection plan",
    "disabled": "has any recorded disability",
    "case_length_days": "days from referral to closure",
}
#: Groups the audit compares (each where the data have it).
GROUPS = {
    "ethnic_group": "broad ethnic group",
    "sex": "sex",
    "disabled": "disability",
    "deprivation": "deprivation (quintile or decile of the child's area, where the extract has it)",
}
#: children-table columns read as the deprivation group, first found wins
DEPRIVATION_COLUMNS = ("deprivation", "deprivation_quintile", "imd_quintile", "imd_decile", "idaci_decile")

NOTEBOOK_DEFAULTS = {
    "features": [
        "age_at_closure",
        "previous_referrals",
        "primary_need",
        "referral_source",
        "referral_nfa",
        "had_assessment",
        "had_cp_plan",
        "had_cin_plan",
        "disabled",
    ],
    "groups": ["ethnic_group", "sex", "disabled", "deprivation"],
    "flag_share": 0.1,
    "test_from": None,
    "test_years": 1,
    "primary_model": "logistic",
    "bars": {},
    "bootstrap_reps": 200,
    "confidence_level": 0.95,
    "seed": 20251201,
}


def _suggest(word, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" Did you mean '{close[0]}'?" if close else f" Known: {', '.join(options)}."


def check_parameters(params: dict) -> dict:
    """The notebook's parameters checked and normalised; every mistake reported at once."""
    if not isinstance(params, dict):
        raise EvaluationFileError("'parameters' must be a mapping (features, groups, flag_share, bars, ...).")
    problems: list[str] = []
    out = {}
    for k in params:
        if k not in NOTEBOOK_DEFAULTS:
            problems.append(f"unknown parameter '{k}'.{_suggest(k, NOTEBOOK_DEFAULTS)}")
    p = {**NOTEBOOK_DEFAULTS, **params}
    for key, known in (("features", FEATURES), ("groups", GROUPS)):
        v = p[key]
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, (list, tuple)) or (key == "features" and not v):
            problems.append(f"'{key}' must be a list of names; known: {', '.join(known)}.")
            continue
        good = []
        for name in v:
            if not isinstance(name, str) or name not in known:
                problems.append(f"unknown {key[:-1]} {name!r}.{_suggest(name, known)}")
            elif name not in good:
                good.append(name)
        out[key] = good
    _check_split(p, out, problems)
    pm = p["primary_model"]
    if pm not in ra.MODELS:
        problems.append(
            f"'primary_model' must be one of {', '.join(ra.MODELS)} (the model the verdict is about, named before the results are seen); got {pm!r}."
        )
    else:
        out["primary_model"] = pm
    out["bars"] = _check_bars(p["bars"], problems)
    for key, lo, hi in (("bootstrap_reps", 0, 5000), ("seed", 0, 2**32 - 1)):
        v = p[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            problems.append(f"'{key}' must be a whole number from {lo} to {hi}; got {v!r}.")
        else:
            out[key] = v
    lv = p["confidence_level"]
    if isinstance(lv, bool) or not isinstance(lv, (int, float)) or not 0.5 <= lv < 1:
        problems.append(f"'confidence_level' must be between 0.5 and 1 (e.g. 0.95); got {lv!r}.")
    else:
        out["confidence_level"] = float(lv)
    refuse_parameters("risk_model_audit", problems)
    return out


def _check_split(p: dict, out: dict, problems: list[str]) -> None:
    """The flag share and the time-based split: which later closures the model is judged on."""
    fs = p["flag_share"]
    if isinstance(fs, bool) or not isinstance(fs, (int, float)) or not 0 < fs < 1:
        problems.append(
            f"'flag_share' must be the share of children the model would flag, between 0 and 1 (0.1: the top 10%); got {fs!r}."
        )
    else:
        out["flag_share"] = float(fs)
    tf = p["test_from"]
    if tf is None:
        out["test_from"] = None
    else:
        try:
            out["test_from"] = str(pd.Timestamp(str(tf)).date())
        except (ValueError, TypeError):
            problems.append(f"'test_from' must be a date (YYYY-MM-DD) or left out; got {tf!r}.")
    ty = p["test_years"]
    if isinstance(ty, bool) or not isinstance(ty, (int, float)) or not 0.25 <= ty <= 5:
        problems.append(f"'test_years' must be from 0.25 to 5 (years of later closures to test on); got {ty!r}.")
    else:
        out["test_years"] = float(ty)


def _check_bars(bars, problems: list[str]) -> dict:
    """The bars stated before the results are seen, each checked against its default's shape."""
    bars = bars if bars is not None else {}
    if not isinstance(bars, dict):
        problems.append("'bars' must be a mapping of bar names to values, e.g. {auc_min: 0.75}.")
        bars = {}
    merged = dict(ra.DEFAULT_BARS)
    for k, v in bars.items():
        if k not in ra.DEFAULT_BARS:
            problems.append(f"unknown bar '{k}'.{_suggest(k, ra.DEFAULT_BARS)}")
            continue
        default = ra.DEFAULT_BARS[k]
        if isinstance(default, list):
            ok = (
                isinstance(v, (list, tuple))
                and len(v) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                and v[0] < v[1]
            )
            if not ok:
                problems.append(f"bar '{k}' must be [low, high] with low below high (default {default}); got {v!r}.")
                continue
            merged[k] = [float(v[0]), float(v[1])]
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                problems.append(f"bar '{k}' must be a number of 0 or more (default {default}); got {v!r}.")
                continue
            merged[k] = float(v) if k != "min_group_cases" else int(v)
    return merged


def check_evaluation_parameters(parameters: dict) -> dict:
    """For insight run's check before anything runs (evaluation.PARAMETER_CHECKS)."""
    if not isinstance(parameters, dict):
        raise EvaluationFileError("'parameters' must be a mapping (features, groups, flag_share, bars, ...).")
    return check_parameters({k: v for k, v in parameters.items() if k not in REPORT_PARAMETERS})


def notebook_parameters(namespace: dict) -> dict:
    """The analysis parameters among a notebook's variables (call with globals() after the parameters cell)."""
    return check_parameters(notebook_variables(namespace, REPORT_PARAMETERS))


# --------------------------------------------------------------------------------------
# Closed cases with what was known at closure
# --------------------------------------------------------------------------------------


def cases_frame(tables: dict, horizon_days: int = ra.HORIZON_DAYS) -> pd.DataFrame:
    """One row per closed case at risk of re-referral: features known at closure, groups, and
    ``rereferred`` (1 if referred again within the horizon; NaN when the extract date comes before
    the horizon ends, so the outcome is not yet known; 0 for a child who turned 18 first, since
    they were not re-referred)."""
    ep = at_risk(build_episodes(tables), renumber=True)
    if not len(ep):
        raise InputError(
            "There are no closed cases at risk of re-referral in this council's data, so there is nothing to audit."
        )
    out = _known_at_closure(ep, tables, horizon_days)
    rid = ep["referral_id"].astype(str)
    _add_assessments(out, tables.get("assessments"), rid)
    _add_plans(out, tables.get("plans"), rid)
    _add_deprivation(out, tables.get("children"))
    return out


def _known_at_closure(ep: pd.DataFrame, tables: dict, horizon_days: int) -> pd.DataFrame:
    """The outcome (re-referral within the horizon, NaN where the extract date comes too soon to know) and
    what the episodes themselves say at closure."""
    councils = tables.get("councils")
    extract = (
        as_datetime(councils["extract_date"]).max()
        if councils is not None and len(councils)
        else as_datetime(ep["end_date"]).max()
    )
    closure = as_datetime(ep["closure_date"])  # already dates: pd.to_datetime would look at every one
    known = (extract - closure).dt.days >= horizon_days
    y = ((ep["event"] == 1) & (ep["duration_days"] <= horizon_days)).astype(float)
    return pd.DataFrame(
        {
            "la_code": ep["la_code"].astype(str),
            "child_id": ep["child_id"].astype(str),
            "closure_date": closure,
            "rereferred": y.where(known, np.nan),
            "age_at_closure": pd.to_numeric(ep["age_at_closure"], errors="coerce"),
            "previous_referrals": pd.to_numeric(ep["previous_referrals"], errors="coerce").astype(float),
            "primary_need": ep["primary_need"].astype(object).where(ep["primary_need"].notna(), "missing").astype(str),
            "referral_source": ep["referral_source"]
            .astype(object)
            .where(ep["referral_source"].notna(), "missing")
            .astype(str),
            "referral_nfa": ep["referral_nfa"].fillna(False).astype(bool).astype(int),
            "case_length_days": (closure - as_datetime(ep["referral_date"])).dt.days.astype(float),
            "disabled": (ep["disability"].astype(str).str.upper() != "NONE").astype(int),
            "sex": ep["sex"].astype(object).where(ep["sex"].notna(), "U").astype(str),
            "ethnic_group": ep["ethnicity"].map(ETHNICITY_GROUP).fillna("Not known").astype(str),
        }
    )


def _add_assessments(out: pd.DataFrame, assessments: pd.DataFrame | None, rid: pd.Series) -> None:
    """Whether the referral had an assessment, and how many factors it recorded (0 without)."""
    if assessments is None or not len(assessments):
        out["had_assessment"], out["assessment_factors"] = 0, 0.0
        return
    ids = assessments["referral_id"].astype(str)
    out["had_assessment"] = rid.isin(set(ids)).astype(int).to_numpy()
    if "factors" in assessments.columns:
        factors = assessments["factors"].fillna("").astype(str)
        counted = factors.str.count(r"[^;]*[^;\s][^;]*")  # the ;-separated items that are not blank
        out["assessment_factors"] = rid.map(counted.groupby(ids).max()).fillna(0).to_numpy(float)
    else:
        out["assessment_factors"] = 0.0


def _add_plans(out: pd.DataFrame, plans: pd.DataFrame | None, rid: pd.Series) -> None:
    """Whether the referral led to a child in need plan and to a child protection plan."""
    for kind, col in (("CIN", "had_cin_plan"), ("CP", "had_cp_plan")):
        if plans is None or not len(plans):
            out[col] = 0
        else:
            ids = set(plans.loc[plans["plan_type"].astype(str).str.upper() == kind, "referral_id"].astype(str))
            out[col] = rid.isin(ids).astype(int).to_numpy()


def _add_deprivation(out: pd.DataFrame, children: pd.DataFrame | None) -> None:
    """The child's deprivation group, from the first of DEPRIVATION_COLUMNS the children table has (if any)."""
    dep = next((c for c in DEPRIVATION_COLUMNS if children is not None and c in children.columns), None)
    if dep is not None:
        first = children.drop_duplicates("child_id")
        m = first.set_index(first["child_id"].astype(str))[dep]
        out["deprivation"] = out["child_id"].map(m).astype(object).where(lambda s: s.notna(), "Not known").astype(str)


# --------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------


@dataclass
class RiskAudit:
    """Everything the report needs, aggregates only (no per-child score, no row)."""

    parameters: dict
    split: ra.Split
    models: dict[str, ra.ModelAudit]
    verdicts: dict[str, rv.Verdict]
    groups_used: list[str]
    groups_missing: list[str]
    thresholds_from: str
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def hidden(self, model: str, attribute: str, threshold: int) -> set[str]:
        """Groups whose rates would give a small count away (report.risk_audit_disclosure.hidden_groups):
        their rates are never published."""
        return risk_audit_disclosure.hidden_groups(self, model, attribute, threshold)

    def hidden_bins(self, model: str, threshold: int) -> list[bool]:
        return risk_audit_disclosure.hidden_bins(self, model, threshold)

    def counts_shown(self, model: str, threshold: int) -> bool:
        """Whether the model's precision, recall, share flagged and base rate may be published."""
        return risk_audit_disclosure.overall_shown(self, model, threshold)

    def to_dict(self) -> dict:
        """results.json: aggregates only, with the rates of groups (and calibration bins) that would
        give a small count away left out, as in the report."""
        thr = int(self.parameters.get("disclosure_threshold", 5))
        models = {}
        for k, v in self.models.items():
            d = v.to_dict()
            if not self.counts_shown(k, thr):
                for key in COUNT_METRICS:
                    d["metrics"][key] = {"suppressed": True}
            for attr in d["groups"]:
                for g in self.hidden(k, attr, thr):
                    d["groups"][attr][g] = {"suppressed": True}
            d["calibration_curve"] = [
                {"suppressed": True} if h else b for b, h in zip(d["calibration_curve"], self.hidden_bins(k, thr))
            ]
            models[k] = d
        verdicts = {}
        for k, v in self.verdicts.items():
            vd = v.to_dict()
            hid = {f"{a}: {g}" for a in self.groups_used for g in self.hidden(k, a, thr)}
            if not self.counts_shown(k, thr):
                hid.add("")  # the whole period's precision check
            vd["checks"] = [
                c
                if c["group"] not in hid or (c["group"] == "" and c["what"] not in COUNT_METRICS)
                else {"what": c["what"], "group": c["group"], "result": c["result"], "suppressed": True}
                for c in vd["checks"]
            ]
            verdicts[k] = vd
        return {
            "split": self.split.to_dict(),
            "primary_model": self.parameters["primary_model"],
            "flag_share": self.parameters["flag_share"],
            "bars": self.parameters["bars"],
            "groups": self.groups_used,
            "groups_not_in_data": self.groups_missing,
            "threshold_rule": self.thresholds_from,
            "models": models,
            "verdict": verdicts,
            "notes": self.notes,
            "seconds": self.seconds,
        }


def audit(
    frame: pd.DataFrame,
    *,
    features,
    groups,
    flag_share: float = 0.1,
    test_from=None,
    test_years: float = 1.0,
    primary_model: str = "logistic",
    bars: dict | None = None,
    bootstrap_reps: int = 200,
    confidence_level: float = 0.95,
    seed: int = 0,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
) -> RiskAudit:
    """Fit both models on the earlier closures and judge them on the later ones.

    The flag threshold is the score above which ``flag_share`` of the *training* cases fall: what a
    council would have fixed before using the model (so the test period's share flagged may differ)."""
    bars = {**ra.DEFAULT_BARS, **(bars or {})}
    params = {
        "features": list(features),
        "groups": list(groups),
        "flag_share": flag_share,
        "test_from": test_from,
        "test_years": test_years,
        "primary_model": primary_model,
        "bars": bars,
        "bootstrap_reps": bootstrap_reps,
        "confidence_level": confidence_level,
        "seed": seed,
        "disclosure_threshold": int(disclosure_threshold),
    }
    split = _periods(frame, features, test_from, test_years)
    notes = []
    used = [g for g in groups if g in frame.columns]
    missing = [g for g in groups if g not in frame.columns]
    if missing:
        notes.append(f"Not in this council's data, so not compared: {', '.join(GROUPS[g] for g in missing)}.")
    X = ra.prepare(frame, features)
    test = frame.iloc[split.test]
    group_cols = {g: (test[g].map({1: "Yes", 0: "No"}) if g == "disabled" else test[g].astype(str)) for g in used}
    models, verdicts, seconds = {}, {}, {}
    with one_thread(user_api=None):  # small problems (stats.threads); the boosted trees thread with OpenMP
        for i, kind in enumerate(ra.MODELS):
            models[kind], verdicts[kind] = _fit_and_judge(kind, X, frame, split, group_cols, params, seed + i, seconds)
    return RiskAudit(
        params,
        split,
        models,
        verdicts,
        used,
        missing,
        f"the score above which {flag_share:.0%} of the training period's cases fell",
        notes,
        seconds,
    )


def _periods(frame: pd.DataFrame, features, test_from, test_years) -> ra.Split:
    """The time split into training and test periods, refused when a feature is missing or a period is too
    small to fit and judge a model in."""
    missing_features = [f for f in features if f not in frame.columns]
    if missing_features:
        raise InputError(f"The closed cases have no column for feature(s) {', '.join(missing_features)}.")
    split = ra.time_split(frame, test_from=test_from, test_years=test_years)
    y = frame["rereferred"].to_numpy(float)
    for what, yy in (("training", y[split.train]), ("test", y[split.test])):
        if len(yy) < 50 or yy.sum() < 10 or (1 - yy).sum() < 10:
            raise InputError(
                f"Too few closed cases in the {what} period ({len(yy):,}, with closures "
                f"{'up to ' + str(split.train_to.date()) if what == 'training' else 'from ' + str(split.test_from.date())}) "
                f"to fit and judge a risk model: at least 50 with 10 re-referred and 10 not are needed. "
                f"Set test_from or test_years in the evaluation file."
            )
    return split


def _fit_and_judge(
    kind: str,
    X: pd.DataFrame,
    frame: pd.DataFrame,
    split: ra.Split,
    group_cols: dict[str, pd.Series],
    params: dict,
    seed: int,
    seconds: dict,
) -> tuple[ra.ModelAudit, rv.Verdict]:
    """Fit one model on the training period, flag the test period's cases above the training period's
    threshold and judge its accuracy and fairness against the bars (the scores are dropped here)."""
    features, flag_share = params["features"], params["flag_share"]
    y = frame["rereferred"].to_numpy(float)
    test = frame.iloc[split.test]
    t0 = time.perf_counter()
    m = ra.make_model(kind, X.iloc[split.train], features, seed=params["seed"]).fit(X.iloc[split.train], y[split.train])
    seconds[f"fit_{kind}"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    threshold = float(np.quantile(m.predict_proba(X.iloc[split.train])[:, 1], 1 - flag_share))
    p = m.predict_proba(X.iloc[split.test])[:, 1]
    judged = ra.audit_scores(
        y[split.test],
        p,
        threshold,
        test["child_id"].to_numpy(),
        group_cols,
        model=kind,
        flag_share=flag_share,
        reps=params["bootstrap_reps"],
        level=params["confidence_level"],
        seed=seed,
    )
    del p  # no per-child score is kept
    verdict = rv.verdict(judged, params["bars"])
    seconds[f"judge_{kind}"] = round(time.perf_counter() - t0, 2)
    return judged, verdict
