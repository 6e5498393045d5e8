"""Intervention effect: did an intervention change re-referral, and how sure are we?

An evaluator names an intervention (say Family Group Conferences), the covariates that
drove who received it and a causal graph (DAG) in the evaluation file. This module turns
a council's tables into one row per closed episode with a treatment flag and two outcomes,
then estimates the effect of the intervention on

* re-referral within the horizon (a yes/no outcome): inverse probability weighting,
  propensity-score matching, regression adjustment and a doubly robust (AIPW) estimator,
  each with a valid interval (influence-function errors clustered by child; Abadie-Imbens
  errors for matching);
* time to re-referral: inverse-probability-weighted Kaplan-Meier curves, the risk and
  restricted mean survival time (RMST) differences at the horizon (child-cluster
  bootstrap intervals) and a weighted Cox hazard ratio with child-clustered robust errors.

DoWhy supplies the causal model, the identification of the adjustment set from the graph
(back-door criterion), a cross-check of the weighting and matching estimates and its
refuters. Diagnostics (standardised differences, effective sample size, propensity
overlap and trimming, E-values) say how far the answer can be trusted. The estimands and
the handling of censoring and competing events are set out in docs/causal.md.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

from insightlib.analyses.intervention_parameters import COVARIATES, _suggest, check_parameters, parse_graph
from insightlib.errors import InputError
from insightlib.report.intervention import InterventionEffect
from insightlib.report.intervention_words import safe_split, term_label
from insightlib.stats.effects import (
    Estimate,
    _cluster_se,
    _z,
    aipw_estimate,
    evalue,
    ipw_estimate,
    ipw_survival,
    matching_estimate,
    naive_difference,
    regression_estimate,
)
from insightlib.stats.propensity import (
    balance_table,
    crump_alpha,
    design_matrix,
    fit_logistic,
    kish_ess,
    propensity_design,
    weights_for,
)
from insightlib.stats.refuters import _dowhy_frame, dowhy_crosscheck, identify, refute
from insightlib.contract import BALANCE_CUTOFF, DISCLOSURE_THRESHOLD, MIN_AT_RISK, as_datetime
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
    Long (~90 lines): the frame's columns one after another, each a join or a flag on the episodes.
    """
    episodes = at_risk(build_episodes(tables) if episodes is None else episodes)
    if len(episodes) == 0:
        raise InputError(
            "There are no closed episodes at risk of re-referral in this council's data, so the intervention effect cannot be estimated."
        )
    ep = episodes.reset_index(drop=True)

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
    iv = iv.loc[mask]
    treated = np.zeros(len(ep), dtype=bool)
    if "referral_id" in iv.columns:
        ids = set(iv["referral_id"].dropna().astype(str))
        treated |= ep["referral_id"].astype(str).isin(ids).to_numpy()
    # by date: an intervention starting while the referral was open
    left = pd.DataFrame(
        {
            "row": np.arange(len(ep)),
            "la_code": ep["la_code"].astype(str).to_numpy(),
            "child_id": ep["child_id"].astype(str).to_numpy(),
            "ref": as_datetime(ep["referral_date"]).to_numpy(),
            "clo": as_datetime(ep["closure_date"]).to_numpy(),
        }
    )
    right = pd.DataFrame(
        {
            "la_code": iv["la_code"].astype(str).to_numpy(),
            "child_id": iv["child_id"].astype(str).to_numpy(),
            "start": as_datetime(iv["start_date"]).to_numpy(),
        }
    )
    m = left.merge(right, on=["la_code", "child_id"], how="inner")
    hit = m.loc[(m["start"] >= m["ref"]) & (m["start"] <= m["clo"]), "row"].to_numpy()
    treated[hit] = True

    h = int(horizon_days)
    dur = ep["duration_days"].to_numpy().astype(float)
    ev = ep["event"].to_numpy().astype(int)
    rr = ev == 1
    followup = _potential_followup(tables, ep)
    binary = np.where(followup >= h, (rr & (dur <= h)).astype(float), np.nan)

    out = pd.DataFrame(
        {
            "la_code": ep["la_code"].astype(str).to_numpy(),
            "child_id": ep["child_id"].astype(str).to_numpy(),
            "treatment": treated.astype(int),
            "time": dur,
            "event": rr.astype(int),
            "competing": (ev == 2).astype(int),
            "followup": followup,
            "outcome_binary": binary,
            "closure_date": as_datetime(ep["closure_date"]).to_numpy(),  # for the scenarios' volumes per year
        }
    )
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
    out.attrs["horizon_days"] = h
    out.attrs["intervention"] = str(intervention)
    return out


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
    from insightlib.contract import ETHNICITY_GROUP

    out: dict[str, Any] = {}
    want = set(covariates)
    if "ethnic_group" in want:
        out["ethnic_group"] = ep["ethnicity"].map(ETHNICITY_GROUP).fillna("Not known").to_numpy()
    if "age_group" in want:
        from insightlib.contract import age_band

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


def evaluate_intervention(
    tables: dict[str, pd.DataFrame] | None = None,
    *,
    intervention: str,
    horizon_days: int,
    covariates: list[str],
    graph: str | None = None,
    estimand: str = "ATE",
    frame: pd.DataFrame | None = None,
    episodes: pd.DataFrame | None = None,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
    **options,
) -> InterventionEffect:
    """The whole analysis for one council: checks, frame, DoWhy identification, estimates,
    diagnostics, refuters. Pass ``frame`` (from analysis_frame) to skip building it. Without a
    ``graph``, each covariate is a common cause of intervention and re-referral (as in DoWhy),
    and the report says so (``assumptions()``).

    Linear algebra runs single-threaded: the matrices are small (episodes x a few dozen
    columns) and a threaded BLAS on a busy shared machine spends its time waiting for
    cores (the bootstrap ran 20 times slower with OpenBLAS's default threads)."""
    with _single_threaded_blas():
        return _evaluate(
            tables,
            intervention=intervention,
            horizon_days=horizon_days,
            covariates=covariates,
            graph=graph,
            estimand=estimand,
            frame=frame,
            episodes=episodes,
            disclosure_threshold=disclosure_threshold,
            **options,
        )


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn (a DoWhy dependency) brings it; without it, run as configured
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _evaluate(
    tables, *, intervention, horizon_days, covariates, graph, estimand, frame, episodes, disclosure_threshold, **options
) -> InterventionEffect:
    """Every step of the analysis in turn (frame, identification, propensity, binary effects, DoWhy cross-check,
    weighted survival, Cox, refuters), each timed for results.json. Long (~220 lines) because it is the sequence
    itself: each step's estimator is a function of stats/, and each step feeds the next."""
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    params = check_parameters(
        {
            "intervention": intervention,
            "horizon_days": horizon_days,
            "covariates": covariates,
            "graph": graph,
            "estimand": estimand,
            **options,
        }
    )
    params["disclosure_threshold"] = disclosure_threshold
    level, est_type, h = params["confidence_level"], params["estimand"], params["horizon_days"]
    rng = np.random.default_rng(params["seed"])
    notes: list[str] = []
    if frame is None:
        frame = analysis_frame(tables or {}, params["intervention"], h, params["covariates"], episodes=episodes)
    frame = frame.reset_index(drop=True)
    n_all = len(frame)
    n_treated_all = int(frame["treatment"].sum())
    if n_treated_all < 2 or n_all - n_treated_all < 2:
        raise InputError(
            f"Only {n_treated_all} of {n_all} episodes had '{params['intervention']}', so there is nobody to compare."
        )
    seconds["frame"] = time.perf_counter() - t_start

    # -- identification (DoWhy) --------------------------------------------------------
    t0 = time.perf_counter()
    g = parse_graph(params["graph"])
    model, ident, adjust = identify(g, frame, params["covariates"])
    not_adjusted = [c for c in params["covariates"] if c not in adjust]
    if not_adjusted:
        notes.append(
            f"By the graph, these are not needed to block back-door paths and are not adjusted for: {', '.join(not_adjusted)}."
        )
    seconds["identify"] = time.perf_counter() - t0

    # -- propensity, overlap and trimming (on all episodes at risk) ---------------------
    t0 = time.perf_counter()
    design = design_matrix(frame, adjust) if adjust else None
    X = design.X if design else np.ones((n_all, 1))
    t = t_all = frame["treatment"].to_numpy().astype(float)
    _, e_all, _ = fit_logistic(propensity_design(X, t), t)
    trim = params["trim"]
    if trim == "crump":
        a = crump_alpha(np.clip(e_all, 1e-12, 1 - 1e-12))
        lo, hi = a, 1 - a
    elif trim == "none":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = trim
    keep = (e_all >= lo) & (e_all <= hi) if (lo > 0 or hi < 1) else np.ones(n_all, bool)
    if 1 <= int((~keep).sum()) < int(disclosure_threshold):
        # the report states how many cases it analysed and the re-referral report how many were followed up:
        # setting aside fewer than the threshold would publish that small count by subtraction
        notes.append(
            f"Fewer than {int(disclosure_threshold)} closed cases fell outside the overlap limits "
            f"({lo:.3f} to {hi:.3f}); they were kept, since setting so few aside would give their number away."
        )
        keep = np.ones(n_all, bool)
        lo, hi = 0.0, 1.0
    trimmed = {"treated": int(((~keep) & (t == 1)).sum()), "control": int(((~keep) & (t == 0)).sum())}
    if (~keep).any():
        notes.append(
            f"{safe_split(trimmed['treated'], trimmed['control'], int(disclosure_threshold))} were set aside: their "
            f"estimated chance of receiving the intervention was outside {lo:.3f} to {hi:.3f} (rule: "
            f"{'Crump et al. 2009' if trim == 'crump' else 'fixed limits'}). The estimates describe the children with overlap."
        )
    overlap = {
        "rule": trim if isinstance(trim, str) else "fixed",
        "trim_low": float(lo),
        "trim_high": float(hi),
        "trimmed": trimmed,
        "trimmed_total": int((~keep).sum()),
        "propensity_quantiles": {
            arm: {q: float(np.quantile(e_all[t == v], q / 100)) for q in (5, 25, 50, 75, 95)}
            for arm, v in (("treated", 1), ("control", 0))
        },
    }
    f = frame.loc[keep].reset_index(drop=True)
    design = design_matrix(f, adjust) if adjust else None
    X = design.X if design else np.ones((len(f), 1))
    t = f["treatment"].to_numpy().astype(float)
    Xp = propensity_design(X, t)
    beta_ps, e, _ = fit_logistic(Xp, t)
    e = np.clip(e, 1e-6, 1 - 1e-6)
    clusters = pd.factorize(f["child_id"])[0]
    w = weights_for(t, e, est_type)
    balance = balance_table(design, t, w) if design else pd.DataFrame(columns=["covariate", "smd_before", "smd_after"])
    if len(balance) and balance["smd_after"].abs().max() >= BALANCE_CUTOFF:
        worst = balance.loc[balance["smd_after"].abs().idxmax()]
        notes.append(
            f"After weighting, {term_label(worst['covariate'])} still differs between the groups (standardised difference "
            f"{worst['smd_after']:+.2f}; {BALANCE_CUTOFF} is the usual limit). A few heavily weighted cases are probably responsible: "
            f"consider trimming (trim: crump) or check the overlap plot."
        )
    ess = {
        "treated": kish_ess(w[t == 1]),
        "control": kish_ess(w[t == 0]),
        "treated_n": int((t == 1).sum()),
        "control_n": int((t == 0).sum()),
    }
    seconds["propensity"] = time.perf_counter() - t0

    # -- yes/no outcome within the horizon -----------------------------------------------
    t0 = time.perf_counter()
    b = f["outcome_binary"].notna().to_numpy()
    yb, tb, Xb = f.loc[b, "outcome_binary"].to_numpy(float), t[b], X[b]
    cb = pd.factorize(f.loc[b, "child_id"])[0]
    counts = {
        "episodes": n_all,
        "treated": n_treated_all,
        "control": n_all - n_treated_all,
        "analysed": int(len(f)),
        "analysed_treated": int((t == 1).sum()),
        "analysed_control": int((t == 0).sum()),
        "children": int(clusters.max() + 1),
        "binary_analysed": int(b.sum()),
        "binary_treated": int(tb.sum()),
        "binary_control": int((1 - tb).sum()),
        "binary_excluded_incomplete_followup": int((~b).sum()),
        "rereferred_within_horizon": int(yb.sum()),
        "rereferred_treated": int(yb[tb == 1].sum()),
        "rereferred_control": int(yb[tb == 0].sum()),
    }
    methods: dict[str, Estimate] = {}
    if tb.sum() < 2 or (1 - tb).sum() < 2:
        raise InputError(
            f"Too few episodes with {h} days of follow-up in one of the groups to estimate the effect on re-referral within {h} days."
        )
    Xpb = propensity_design(Xb, tb)
    _, eb, info_b = fit_logistic(Xpb, tb)
    eb = np.clip(eb, 1e-6, 1 - 1e-6)
    naive = {"risk_difference": naive_difference(yb, tb, cb, level)}
    methods["ipw"], _ = ipw_estimate(yb, tb, Xpb, eb, cb, est_type, level, info_b)
    methods["matching"] = matching_estimate(yb, tb, eb, est_type, level)
    methods["regression"], (m1, m0) = regression_estimate(yb, tb, Xb, cb, est_type, level)
    methods["aipw"], (mu1, mu0, if1, if0) = aipw_estimate(yb, tb, eb, m1, m0, cb, est_type, level)
    # risk ratio from the doubly robust potential-outcome means (for the E-value)
    infl_log = if1 / mu1 - if0 / mu0
    se_log = _cluster_se(infl_log, cb)
    z = _z(level)
    rr = Estimate(
        float(mu1 / mu0),
        float(math.exp(math.log(mu1 / mu0) - z * se_log)),
        float(math.exp(math.log(mu1 / mu0) + z * se_log)),
        se_log,
        "delta method on the log scale",
    )
    seconds["binary"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dw = {"estimand_type": str(getattr(ident, "estimand_type", "")), "backdoor_variables": adjust}
    try:
        bmodel_data = _dowhy_frame(f.loc[b].reset_index(drop=True), params["covariates"])
        model._data = bmodel_data
        dw.update(dowhy_crosscheck(model, ident, eb, est_type))
        dw["agrees_ipw"] = bool(abs(dw["ipw"] - methods["ipw"].estimate) < 1e-6)
    except Exception as exc:
        notes.append(f"The cross-check of the estimates could not run: {type(exc).__name__}: {exc}")
    seconds["dowhy_crosscheck"] = time.perf_counter() - t0

    # -- time to re-referral ------------------------------------------------------------
    t0 = time.perf_counter()
    tm, ev = f["time"].to_numpy(float), f["event"].to_numpy(int)
    km = ipw_survival(tm, ev, t, Xp, beta_ps, clusters, h, est_type, params["bootstrap_reps"], level, rng)
    sf, s1, s0, c1, c0 = km["fit"], km["s1"], km["s0"], km["c1"], km["c0"]
    rd_est, rm_est, rr_km = km["risk_difference"], km["rmst_difference"], km["risk_ratio"]
    r1, r0, naive_rd_km, naive_rmst = km["r1"], km["r0"], km["naive_risk_difference"], km["naive_rmst_difference"]
    if rr_km is None:
        notes.append("Too few bootstrap replicates for survival intervals; they are missing.")
    seconds["survival_bootstrap"] = time.perf_counter() - t0

    # survival curves on a weekly grid, cut where fewer than 10 (unweighted) remain at risk, and not drawn while
    # 1 to threshold - 1 of the arm have come back (as the re-referral report's curves): with ATT the treated
    # arm's weights are 1, so its curve is a plain Kaplan-Meier whose height with the group size gives the count
    # back, and with any weights a curve read point by point shows each week a child came back as a drop
    days = np.unique(np.concatenate([np.arange(0, h + 1, 7), [h]])).astype(float)
    pos = np.searchsorted(sf.grid, days, side="right") - 1
    surv = pd.DataFrame({"day": days.astype(int)})
    for arm, v, s_, c_ in (("treated", 1, s1, c1), ("control", 0, s0, c0)):
        at = np.array([np.sum((t == v) & (tm >= d)) for d in days])
        surv[f"{arm}_survival"] = s_[pos]
        surv[f"{arm}_ci_low"] = c_[0][pos]
        surv[f"{arm}_ci_high"] = c_[1][pos]
        surv[f"{arm}_at_risk"] = at
        back = np.array([np.sum((t == v) & (tm <= d) & (ev == 1)) for d in days])
        surv[f"{arm}_shown"] = (at >= MIN_AT_RISK) & ~((back >= 1) & (back < int(disclosure_threshold)))

    # weighted Cox with child-clustered robust errors (insightlib.stats.cox: R's coxph with weights and
    # cluster, Efron ties; lifelines' weighted fit took ten times as long and its robust errors differ from R's)
    t0 = time.perf_counter()
    from insightlib.stats.cox import cox_fit, robust_variance

    cw = cox_fit(tm, ev, t[:, None], weights=w)
    b_w, se_w = float(cw.beta[0]), float(math.sqrt(robust_variance(cw, clusters)[0, 0]))
    hr = Estimate(
        math.exp(b_w),
        math.exp(b_w - z * se_w),
        math.exp(b_w + z * se_w),
        se_w,
        "Cox, weighted, robust (sandwich) errors clustered by child",
    )
    # covariate-adjusted (conditional) Cox: comparable with a conditional hazard ratio (the
    # simulation's and synth's truth), not with the marginal one from the weighted Cox
    hr_cond = None
    if design is not None:
        xc = np.column_stack([t, X[:, 1:]])
        xc = xc[:, np.r_[True, xc[:, 1:].std(axis=0) > 0]]
        try:
            # insightlib.stats.cox (Efron ties, linear-time child-clustered sandwich; checked against R)
            cf = cox_fit(tm, ev, xc)
            b0, se0 = float(cf.beta[0]), float(math.sqrt(robust_variance(cf, clusters)[0, 0]))
            hr_cond = Estimate(
                math.exp(b0),
                math.exp(b0 - z * se0),
                math.exp(b0 + z * se0),
                se0,
                "Cox adjusted for the covariates (Efron ties), robust errors clustered by child",
            )
        except Exception as exc:
            notes.append(f"The covariate-adjusted Cox model could not be fitted: {type(exc).__name__}.")
    seconds["cox"] = time.perf_counter() - t0

    # the E-value goes with the headline (weighted KM risks at the horizon); without a bootstrap,
    # with the doubly robust risk ratio of the follow-up-complete cases
    effect = {
        "risk_difference": rd_est,
        "rmst_difference": rm_est,
        "hazard_ratio": hr,
        "risk_ratio": rr_km if rr_km is not None else rr,
        "risk_ratio_binary": rr,
        "risk_difference_binary": methods["aipw"],
    }
    rr = effect["risk_ratio"]
    if hr_cond is not None:
        effect["hazard_ratio_conditional"] = hr_cond
    naive["km_risk_difference"] = Estimate(
        naive_rd_km, float("nan"), float("nan"), float("nan"), "unweighted Kaplan-Meier, point only"
    )
    naive["rmst_difference"] = Estimate(
        naive_rmst, float("nan"), float("nan"), float("nan"), "unweighted Kaplan-Meier, point only"
    )
    common = float(np.nanmean(yb)) >= 0.15
    e_value = {
        "risk_ratio": evalue(rr.estimate, rr.ci_low, rr.ci_high, "RR"),
        "hazard_ratio": evalue(hr.estimate, hr.ci_low, hr.ci_high, "HR", common=common),
        "outcome_common": common,
    }
    e_value["estimate"] = e_value["risk_ratio"]["estimate"]
    e_value["ci"] = e_value["risk_ratio"]["ci"]
    risks = {"treated": r1, "control": r0, "binary_treated": float(mu1), "binary_control": float(mu0)}

    # -- refuters (bounded) -----------------------------------------------------------------
    t0 = time.perf_counter()
    refutations = refute(
        g,
        f,
        adjust,
        est_type,
        simulations=params["refutation_simulations"],
        sample=params["refutation_sample"],
        seed=params["seed"],
        se=methods["ipw"].se,
    )
    seconds["refuters"] = time.perf_counter() - t0
    from insightlib.analyses import scenarios as scenario_analysis
    from insightlib.analyses import subgroups as subgroup_analysis

    subs = subgroup_analysis.for_intervention(
        f.loc[b].reset_index(drop=True),
        yb,
        tb,
        eb,
        m1,
        m0,
        cb,
        params["subgroups"],
        level=level,
        disclosure_threshold=disclosure_threshold,
    )

    scen = scenario_analysis.for_intervention(
        f,
        rd_est,
        shares=params["scenario_shares"],
        estimand=est_type,
        horizon_days=h,
        level=level,
        extract_date=scenario_analysis.extract_date_of(tables, f) if "closure_date" in f.columns else None,
    )
    seconds["total"] = time.perf_counter() - t_start
    seconds = {k: round(v, 2) for k, v in seconds.items()}

    return InterventionEffect(
        parameters=params,
        counts=counts,
        adjustment_set=adjust,
        not_adjusted=not_adjusted,
        methods=methods,
        effect=effect,
        naive=naive,
        risks=risks,
        balance=balance,
        ess=ess,
        overlap=overlap,
        survival=surv,
        e_value=e_value,
        refutations=refutations,
        dowhy=dw,
        notes=notes,
        seconds=seconds,
        scenarios=scen,
        subgroups=subs,
        _ps={"treated": e_all[t_all == 1].copy(), "control": e_all[t_all == 0].copy()},
    )
