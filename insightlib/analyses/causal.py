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

import difflib
import logging
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

from insightlib.report import text
from insightlib.errors import EvaluationFileError, InputError
from insightlib.stats.survival import km_steps, step_area, weighted_km

#: Graph node names that stand for the treatment and the outcome.
TREATMENT_NODE = "intervention"
OUTCOME_NODE = "rereferral"
ESTIMANDS = ("ATE", "ATT")

#: Covariates an evaluation file may name: episode columns (COMMON.md) and a few derived
#: from the council's tables, all measured at or before the referral the intervention
#: belongs to. kind: "numeric", "binary" or "category".
COVARIATES = {
    "age_at_closure": ("numeric", "age in years when the case closed"),
    "age_group": ("category", "age band when the case closed (under 5, 5 to 9, 10 to 15, 16 and 17: the re-referral report's bands)"),
    "previous_referrals_group": ("category", "previous referrals banded 0, 1, 2, 3+"),
    "previous_referrals": ("numeric", "number of the child's referrals before this one"),
    "episode_number": ("numeric", "which closed episode of the child this is"),
    "sex": ("category", "sex (M/F/U)"),
    "ethnicity": ("category", "ethnicity (20 CIN codes)"),
    "ethnic_group": ("category", "broad ethnic group (White, Mixed, Asian, Black, Other, Not known)"),
    "disability": ("category", "disability code (NONE if none)"),
    "disabled": ("binary", "has any recorded disability"),
    "primary_need": ("category", "primary need code N0-N9"),
    "referral_source": ("category", "who made the referral"),
    "referral_nfa": ("binary", "referral closed with no further action"),
    "closure_reason": ("category", "why the case closed (may be affected by the intervention: see docs)"),
    "had_assessment": ("binary", "the referral had an assessment"),
    "assessment_factors": ("numeric", "number of factors recorded at assessment"),
    "had_cin_plan": ("binary", "the referral led to a child in need plan"),
    "had_cp_plan": ("binary", "the referral led to a child protection plan"),
    "closure_year": ("numeric", "calendar year of the closure"),
}

#: Optional parameters with their defaults.
DEFAULTS = {
    "trim": "crump",  # "crump", "none", or [low, high]
    "bootstrap_reps": 200,
    "refutation_simulations": 3,
    "refutation_sample": 3000,
    "confidence_level": 0.95,
    "seed": 20251125,
    "scenario_shares": [0.1, 0.25, "none"],  # insightlib.stats.scenarios: what if it reached more (or none)
    "subgroups": None,  # insightlib.analyses.subgroups: who responds best (None: the default characteristics)
}
KNOWN_PARAMETERS = ("intervention", "horizon_days", "estimand", "covariates", "graph", *DEFAULTS)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Evaluation-file parameters and the causal graph
# --------------------------------------------------------------------------------------


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _suggest_or_list(word: str, options, what: str) -> str:
    """'Did you mean X?' when one is close, else the whole list (messages stay short enough to
    show in full in insight run's table of failed councils)."""
    hint = _suggest(word, options)
    return hint if hint else f" {what}: {', '.join(options)}."


def parse_graph(text: str) -> nx.DiGraph:
    """A DOT (``digraph {...}``) or GML (``graph [...]``) string as a networkx DiGraph.

    Raises ValueError with a plain-English reason when the text is neither.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the graph is empty; write it in DOT (digraph { a -> b }) or GML (graph [ ... ])")
    s = text.strip()
    if re.match(r"^(strict\s+)?digraph\b", s, flags=re.I):
        import contextlib
        import io

        said = io.StringIO()  # pydot prints its parse errors; keep them out of the report, put them in the message
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(said):  # and its parser warns about pyparsing names
                warnings.simplefilter("ignore")
                import pydot

                parsed = pydot.graph_from_dot_data(s)
        except Exception as exc:  # pydot raises its own parse errors
            raise ValueError(f"the DOT text could not be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        if not parsed:
            where = [ln.strip() for ln in said.getvalue().splitlines() if "line:" in ln]
            detail = f": {where[-1]}" if where else ""
            raise ValueError(f"the DOT text could not be read{detail} (check braces, quotes, semicolons and '->' arrows)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = nx.DiGraph(nx.nx_pydot.from_pydot(parsed[0]))
        g = nx.relabel_nodes(g, {n: str(n).strip().strip('"') for n in g.nodes})
        for bad in ("node", "edge", "graph", "\\n"):
            if bad in g and g.degree(bad) == 0:
                g.remove_node(bad)
    elif re.match(r"^(strict\s+)?graph\s*\{", s, flags=re.I):
        raise ValueError("the DOT graph is undirected ('graph {'); a causal graph must be a 'digraph' with '->' arrows")
    elif re.match(r"^graph\s*\[", s, flags=re.I):
        try:
            g = nx.parse_gml(s, label="label")
        except Exception as exc:
            raise ValueError(f"the GML text could not be read ({exc})") from None
        if not g.is_directed():
            raise ValueError("the GML graph is undirected; add 'directed 1' inside graph [ ... ]")
        g = nx.DiGraph(g)
    else:
        raise ValueError(
            "the graph is neither DOT (starting 'digraph {') nor GML (starting 'graph [')"
        )
    if g.number_of_nodes() == 0:
        raise ValueError("the graph has no nodes")
    return g


def common_cause_graph(covariates) -> str:
    """The graph DoWhy assumes when given common causes but no graph: each covariate causes both
    the intervention and re-referral, and the intervention may change re-referral."""
    lines = [f"  {c} -> {TREATMENT_NODE}; {c} -> {OUTCOME_NODE};" for c in covariates]
    return "digraph {\n" + "\n".join(lines + [f"  {TREATMENT_NODE} -> {OUTCOME_NODE};"]) + "\n}"


#: Said in the report when the evaluation file gave covariates but no graph.
GRAPH_FROM_COVARIATES = (
    "**Graph.** The evaluation file names the characteristics to allow for but no causal graph, so, as is usual "
    "when given common causes without a graph, each of them is taken to influence both who received the "
    "intervention and whether the child came back (a common cause of both), nothing else is, and all of them are "
    "adjusted for. If one of them is itself changed by the intervention, or only influences one of the two, "
    "draw the graph in the evaluation file instead."
)


def check_parameters(params: dict) -> dict:
    """The intervention notebook's parameters, checked and normalised.

    Every mistake is reported at once in one EvaluationFileError, in words an evaluator
    can act on (unknown covariate, graph without the treatment or outcome, a cycle, ...).
    """
    if not isinstance(params, dict):
        raise EvaluationFileError("'parameters' must be a mapping (intervention, horizon_days, estimand, covariates, graph).")
    problems: list[str] = []
    out: dict[str, Any] = {}
    # set by an earlier check (the notebook hands its checked parameters on): the graph was derived
    derived_before = bool(params.get("graph_from_covariates", False))
    params = {k: v for k, v in params.items() if k != "graph_from_covariates"}
    for key in params:
        if key not in KNOWN_PARAMETERS:
            problems.append(f"unknown parameter '{key}'.{_suggest_or_list(key, KNOWN_PARAMETERS, 'Known')}")

    name = params.get("intervention")
    if not isinstance(name, str) or not name.strip():
        problems.append("'intervention' is required: the intervention's name as recorded in the interventions table, e.g. Family Group Conference.")
    else:
        out["intervention"] = name.strip()

    horizon = params.get("horizon_days")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or (isinstance(horizon, float) and not horizon.is_integer()):
        problems.append(f"'horizon_days' must be a whole number of days greater than 0 (e.g. 365); got {horizon!r}.")
    elif horizon <= 0:
        problems.append(f"'horizon_days' must be positive (the follow-up window after closure, e.g. 365); got {horizon!r}.")
    else:
        out["horizon_days"] = int(horizon)

    estimand = params.get("estimand", "ATE")
    if not isinstance(estimand, str) or estimand.strip().upper() not in ESTIMANDS:
        problems.append(
            f"'estimand' must be ATE (effect had every child received it, compared with none) or ATT "
            f"(effect among the children who received it); got {estimand!r}."
        )
    else:
        out["estimand"] = estimand.strip().upper()

    covariates = params.get("covariates")
    if isinstance(covariates, str):
        covariates = [covariates]
    if not isinstance(covariates, (list, tuple)) or not covariates:
        problems.append(f"'covariates' must be a list of the characteristics to adjust for; known: {', '.join(COVARIATES)}.")
        covariates = []
    good_covariates = []
    for c in covariates:
        if not isinstance(c, str) or c not in COVARIATES:
            problems.append(f"unknown covariate {c!r}.{_suggest_or_list(c, COVARIATES, 'Known covariates')}")
        elif c not in good_covariates:
            good_covariates.append(c)
    out["covariates"] = good_covariates

    graph_text = params.get("graph")
    out["graph_from_covariates"] = graph_text is None or (
        derived_before and isinstance(graph_text, str) and graph_text.strip() == common_cause_graph(good_covariates))
    if out["graph_from_covariates"]:
        # covariates without a graph: each is a common cause of intervention and outcome (as in DoWhy)
        out["graph"] = common_cause_graph(good_covariates)
    elif not isinstance(graph_text, str):
        problems.append(f"'graph' must be the causal graph as text in DOT or GML, or left out; got {type(graph_text).__name__}.")
    else:
        try:
            g = parse_graph(graph_text)
        except ValueError as exc:
            problems.append(f"'graph': {exc}.")
        else:
            for node, role in ((TREATMENT_NODE, "treatment"), (OUTCOME_NODE, "outcome")):
                if node not in g:
                    problems.append(f"'graph' has no node '{node}' (the {role}).{_suggest(node, g.nodes)} Name the {role} node exactly '{node}'.")
            if not nx.is_directed_acyclic_graph(g):
                cycle = nx.find_cycle(g)
                path = " -> ".join([str(e[0]) for e in cycle] + [str(cycle[-1][1])])
                problems.append(f"'graph' is not a DAG: it has the cycle {path}; a cause cannot also be its own consequence.")
            elif TREATMENT_NODE in g and OUTCOME_NODE in g and not nx.has_path(g, TREATMENT_NODE, OUTCOME_NODE):
                problems.append(f"'graph' has no path from '{TREATMENT_NODE}' to '{OUTCOME_NODE}', so it assumes the intervention cannot change re-referral; add '{TREATMENT_NODE} -> {OUTCOME_NODE}'.")
            for node in g.nodes:
                if node in (TREATMENT_NODE, OUTCOME_NODE) or node in good_covariates:
                    continue
                hint = " List it under covariates." if node in COVARIATES else _suggest(node, good_covariates or COVARIATES)
                problems.append(f"'graph' node '{node}' is not one of the listed covariates.{hint}")
            for c in good_covariates:
                if c not in g:
                    problems.append(f"covariate '{c}' is not in the graph; draw its arrows (e.g. {c} -> {TREATMENT_NODE}; {c} -> {OUTCOME_NODE}) or remove it.")
            out["graph"] = graph_text.strip()

    trim = params.get("trim", DEFAULTS["trim"])
    if isinstance(trim, str) and trim.strip().lower() in ("crump", "none"):
        out["trim"] = trim.strip().lower()
    elif (
        isinstance(trim, (list, tuple)) and len(trim) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in trim)
        and 0 <= trim[0] < 0.5 < trim[1] <= 1
    ):
        out["trim"] = [float(trim[0]), float(trim[1])]
    else:
        problems.append(f"'trim' must be 'crump', 'none' or [low, high] propensity limits such as [0.05, 0.95]; got {trim!r}.")

    for key, lo, hi in (("bootstrap_reps", 0, 5000), ("refutation_simulations", 0, 100), ("refutation_sample", 200, 10**7), ("seed", 0, 2**32 - 1)):
        v = params.get(key, DEFAULTS[key])
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            problems.append(f"'{key}' must be a whole number from {lo} to {hi}; got {v!r}.")
        else:
            out[key] = v
    level = params.get("confidence_level", DEFAULTS["confidence_level"])
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.5 <= level < 1:
        problems.append(f"'confidence_level' must be between 0.5 and 1 (e.g. 0.95); got {level!r}.")
    else:
        out["confidence_level"] = float(level)

    from insightlib.stats.scenarios import check_shares

    out["scenario_shares"], share_problems = check_shares(params.get("scenario_shares", DEFAULTS["scenario_shares"]))
    problems += share_problems
    from insightlib.analyses.subgroups import check_subgroups

    out["subgroups"], subgroup_problems = check_subgroups(params.get("subgroups"), good_covariates,
                                                          {c: COVARIATES[c][0] for c in COVARIATES})
    problems += subgroup_problems

    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise EvaluationFileError(
            f"The evaluation file's parameters for the intervention_effect notebook have {len(problems)} "
            f"problem{'s' if len(problems) > 1 else ''}:\n{listing}"
        )
    return out


#: The notebook's parameters cell (notebooks/intervention_effect.ipynb; a test keeps the two equal):
#: what an evaluation file's parameters are merged into.
NOTEBOOK_DEFAULTS = {
    "intervention": "Family Group Conference",
    "horizon_days": 365,
    "estimand": "ATE",
    "covariates": ["age_group", "previous_referrals_group", "primary_need", "referral_nfa", "disabled"],
    "graph": None,
    "trim": "crump",
    "bootstrap_reps": 200,
    "refutation_simulations": 3,
    "refutation_sample": 3000,
    "confidence_level": 0.95,
    "seed": 20251125,
    "scenario_shares": [0.1, 0.25, "none"],
    "subgroups": None,
}


def check_evaluation_parameters(parameters: dict) -> dict:
    """An evaluation file's ``parameters`` for this notebook, checked before anything runs
    (for insight run / insight validate-style checks): merged over the notebook's defaults,
    then check_parameters. Report-only keys (title, ...) are left to the runner."""
    if not isinstance(parameters, dict):
        raise EvaluationFileError("'parameters' must be a mapping (intervention, horizon_days, estimand, covariates, graph).")
    given = {k: v for k, v in parameters.items() if k not in REPORT_PARAMETERS}
    return check_parameters({**NOTEBOOK_DEFAULTS, **given})


#: Notebook variables that are not analysis parameters: set by `insight run` for every
#: notebook, or only about the report.
REPORT_PARAMETERS = ("data", "la_code", "output_dir", "disclosure_threshold", "rounding", "title")
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def notebook_parameters(namespace: dict) -> dict:
    """The analysis parameters among a notebook's variables, checked (check_parameters).

    Call it with ``globals()`` straight after the parameters cell: papermill injects every
    parameter of the evaluation file as a variable, so one misspelt there (``horizon_day``)
    arrives as an extra variable and is reported instead of being silently ignored."""
    import types

    params = {
        k: v for k, v in namespace.items()
        if not k.startswith("_") and k not in REPORT_PARAMETERS and k not in _IPYTHON_NAMES
        and not isinstance(v, types.ModuleType) and not callable(v)
    }
    return check_parameters(params)


# --------------------------------------------------------------------------------------
# The analysis frame
# --------------------------------------------------------------------------------------


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
    if episodes is None:
        from insightlib.ingest.episodes import at_risk, build_episodes

        episodes = at_risk(build_episodes(tables))
    else:
        episodes = episodes.loc[episodes["duration_days"] > 0]
    if len(episodes) == 0:
        raise InputError("There are no closed episodes at risk of re-referral in this council's data, so the intervention effect cannot be estimated.")
    ep = episodes.reset_index(drop=True)

    iv = tables.get("interventions")
    if iv is None or len(iv) == 0:
        raise InputError("interventions: the table is missing or empty, so nobody can be counted as having received the intervention.")
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
    left = pd.DataFrame({
        "row": np.arange(len(ep)), "la_code": ep["la_code"].astype(str).to_numpy(),
        "child_id": ep["child_id"].astype(str).to_numpy(),
        "ref": pd.to_datetime(ep["referral_date"]).to_numpy(), "clo": pd.to_datetime(ep["closure_date"]).to_numpy(),
    })
    right = pd.DataFrame({
        "la_code": iv["la_code"].astype(str).to_numpy(), "child_id": iv["child_id"].astype(str).to_numpy(),
        "start": pd.to_datetime(iv["start_date"]).to_numpy(),
    })
    m = left.merge(right, on=["la_code", "child_id"], how="inner")
    hit = m.loc[(m["start"] >= m["ref"]) & (m["start"] <= m["clo"]), "row"].to_numpy()
    treated[hit] = True

    h = int(horizon_days)
    dur = ep["duration_days"].to_numpy().astype(float)
    ev = ep["event"].to_numpy().astype(int)
    rr = ev == 1
    followup = _potential_followup(tables, ep)
    binary = np.where(followup >= h, (rr & (dur <= h)).astype(float), np.nan)

    out = pd.DataFrame({
        "la_code": ep["la_code"].astype(str).to_numpy(),
        "child_id": ep["child_id"].astype(str).to_numpy(),
        "treatment": treated.astype(int),
        "time": dur,
        "event": rr.astype(int),
        "competing": (ev == 2).astype(int),
        "followup": followup,
        "outcome_binary": binary,
        "closure_date": pd.to_datetime(ep["closure_date"]).to_numpy(),  # for the scenarios' volumes per year
    })
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
                raise InputError(f"covariate '{c}' has no values in this council's data; remove it from the evaluation file.")
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
    closure = pd.to_datetime(ep["closure_date"])
    councils = tables.get("councils") if tables else None
    if councils is not None and len(councils) and "extract_date" in councils.columns:
        extract = pd.to_datetime(councils.drop_duplicates("la_code").set_index(councils.drop_duplicates("la_code")["la_code"].astype(str))["extract_date"])
        end = ep["la_code"].astype(str).map(extract)
    else:  # no councils table: the latest end of observation in the data stands in for the extract date
        end = pd.to_datetime(ep["end_date"]).groupby(ep["la_code"].astype(str)).transform("max")
    end = pd.to_datetime(end)
    if "date_of_birth" in ep.columns:
        dob = pd.to_datetime(ep["date_of_birth"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b18 = dob + pd.DateOffset(years=18)
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
        out["closure_year"] = pd.to_datetime(ep["closure_date"]).dt.year.to_numpy()
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


# --------------------------------------------------------------------------------------
# Design matrix and logistic regression (fast, with frequency weights for the bootstrap)
# --------------------------------------------------------------------------------------


@dataclass
class Design:
    X: np.ndarray  # with intercept in column 0, standardised
    names: list[str]  # column names (intercept first)
    covariate_of: list[str]  # which covariate each column comes from ("" for intercept/squares)
    balance_columns: list[int]  # columns used for the balance table


def design_matrix(frame: pd.DataFrame, covariates: list[str], *, min_level: int = 10) -> Design:
    """Dummies for categories (rare levels pooled as 'other', reference = commonest), and a
    squared term for numeric covariates with many values, so the propensity is not forced linear."""
    cols, names, of, bal = [np.ones(len(frame))], ["(intercept)"], [""], []
    for c in covariates:
        kind = COVARIATES[c][0]
        v = frame[c]
        if kind == "category":
            counts = v.value_counts()
            rare = counts.index[counts < max(min_level, 0.002 * len(frame))]
            v = v.where(~v.isin(rare), "other")
            counts = v.value_counts()
            for level in sorted(counts.index[1:], key=str):  # the commonest level is the reference
                cols.append((v == level).to_numpy(float))
                names.append(f"{c}={level}")
                of.append(c)
                bal.append(len(cols) - 1)
        else:
            x = v.to_numpy(float)
            if np.nanstd(x) == 0:
                continue
            cols.append(x)
            names.append(c)
            of.append(c)
            bal.append(len(cols) - 1)
            if kind == "numeric" and len(np.unique(x)) > 10:
                z = (x - x.mean()) / x.std()
                cols.append(z * z)
                names.append(f"{c}^2")
                of.append("")
    X = np.column_stack(cols)
    # standardise non-intercept columns (numerical stability); balance uses raw values via frame
    raw = X.copy()
    sd = X[:, 1:].std(axis=0)
    sd[sd == 0] = 1.0
    X[:, 1:] = (X[:, 1:] - X[:, 1:].mean(axis=0)) / sd
    d = Design(X=X, names=names, covariate_of=of, balance_columns=bal)
    d.raw = raw  # type: ignore[attr-defined]
    return d


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, beta0=None, *, ridge: float = 1e-6,
                 max_iter: int = 60, tol: float = 1e-9):
    """Newton-Raphson logistic regression (frequency weights allowed).

    A tiny ridge keeps it finite under separation (a covariate level where everyone or
    nobody was treated); returns (beta, fitted probabilities, information matrix / n).
    """
    n, k = X.shape
    w = np.ones(n) if w is None else w
    beta = np.zeros(k) if beta0 is None else beta0.copy()
    if beta0 is None:
        p0 = np.clip(np.average(y, weights=w), 1e-6, 1 - 1e-6)
        beta[0] = math.log(p0 / (1 - p0))
    sw = w.sum()
    pen = ridge * np.eye(k)
    pen[0, 0] = 0.0
    for _ in range(max_iter):
        eta = np.clip(X @ beta, -30, 30)
        p = 1.0 / (1.0 + np.exp(-eta))
        grad = X.T @ (w * (y - p)) / sw - pen @ beta
        info = (X * (w * p * (1 - p))[:, None]).T @ X / sw + pen
        step = np.linalg.solve(info, grad)
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    eta = np.clip(X @ beta, -30, 30)
    p = 1.0 / (1.0 + np.exp(-eta))
    info = (X * (w * p * (1 - p))[:, None]).T @ X / sw + pen
    return beta, p, info


def _rcs(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline terms (Harrell), linear beyond the outer knots."""
    k = knots
    p3 = lambda v: np.maximum(v, 0.0) ** 3  # noqa: E731
    scale = (k[-1] - k[0]) ** 2 or 1.0
    cols = [
        (p3(x - k[j]) - p3(x - k[-2]) * (k[-1] - k[j]) / (k[-1] - k[-2]) + p3(x - k[-1]) * (k[-2] - k[j]) / (k[-1] - k[-2])) / scale
        for j in range(len(k) - 2)
    ]
    return np.column_stack(cols)


def propensity_design(X: np.ndarray, t: np.ndarray, knots: int = 4) -> np.ndarray:
    """Covariates plus spline terms of a first logistic fit's linear predictor.

    Assignment in practice is often a capped or saturating function of risk (few children
    below some floor, or above some ceiling, get the intervention whatever their risk); a
    plain logistic model misses that and biases the weights. The spline in the index lets
    the link bend while keeping the covariate structure."""
    if X.shape[1] < 2:
        return X
    b, _, _ = fit_logistic(X, t)
    eta = X @ b
    kn = np.unique(np.quantile(eta, np.linspace(0.05, 0.95, knots)))
    if len(kn) < 3:
        return X
    B = _rcs(eta, kn)
    sd = B.std(axis=0)
    ok = sd > 1e-12
    if not ok.any():
        return X
    B = (B[:, ok] - B[:, ok].mean(axis=0)) / sd[ok]
    return np.column_stack([X, B])


# --------------------------------------------------------------------------------------
# Estimators for the yes/no outcome, each with influence-function (child-clustered) errors
# --------------------------------------------------------------------------------------


@dataclass
class Estimate:
    """A point estimate with its interval; ``method`` says how the interval was made."""

    estimate: float
    ci_low: float
    ci_high: float
    se: float = float("nan")
    method: str = ""

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high, "se": self.se, "interval": self.method}


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2))


def _cluster_se(influence: np.ndarray, clusters: np.ndarray) -> float:
    """SE of a mean-type estimator from its influence values, summed within child."""
    n = len(influence)
    sums = np.bincount(clusters, weights=influence)
    g = len(sums)
    adj = g / (g - 1) if g > 1 else 1.0
    return float(math.sqrt(adj * np.sum(sums**2)) / n)


def _from_if(est: float, infl: np.ndarray, clusters: np.ndarray, level: float, how: str) -> Estimate:
    se = _cluster_se(infl, clusters)
    z = _z(level)
    return Estimate(float(est), float(est - z * se), float(est + z * se), se, how)


def naive_difference(y, t, clusters, level=0.95) -> Estimate:
    """Unadjusted difference in re-referral proportions (what a simple comparison would say)."""
    n = len(y)
    p1, p0 = y[t == 1].mean(), y[t == 0].mean()
    q = t.mean()
    infl = t * (y - p1) / q - (1 - t) * (y - p0) / (1 - q)
    assert n > 0
    return _from_if(p1 - p0, infl, clusters, level, "influence function, clustered by child")


def ipw_estimate(y, t, X, e, clusters, estimand="ATE", level=0.95, info=None):
    """Normalised (Hajek) inverse probability weighting, with the propensity model's
    estimation accounted for in the influence function (Lunceford & Davidian 2004)."""
    n = len(y)
    if info is None:
        info = (X * (e * (1 - e))[:, None]).T @ X / n
    S = X * (t - e)[:, None]  # propensity score contributions
    Iinv_S = np.linalg.solve(info, S.T).T
    if estimand == "ATE":
        w1, w0 = t / e, (1 - t) / (1 - e)
        mu1 = np.sum(w1 * y) / np.sum(w1)
        mu0 = np.sum(w0 * y) / np.sum(w0)
        psi1 = w1 * (y - mu1)
        psi0 = w0 * (y - mu0)
        A1 = -(X * (t * (y - mu1) * (1 - e) / e)[:, None]).mean(axis=0)
        A0 = (X * ((1 - t) * (y - mu0) * e / (1 - e))[:, None]).mean(axis=0)
        if1 = (psi1 + Iinv_S @ A1) / (np.sum(w1) / n)
        if0 = (psi0 + Iinv_S @ A0) / (np.sum(w0) / n)
    else:
        p = t.mean()
        w0 = (1 - t) * e / (1 - e)
        mu1 = y[t == 1].mean()
        mu0 = np.sum(w0 * y) / np.sum(w0)
        if1 = t * (y - mu1) / p
        A0 = (X * (w0 * (y - mu0))[:, None]).mean(axis=0)
        if0 = (w0 * (y - mu0) + Iinv_S @ A0) / (np.sum(w0) / n)
    return _from_if(mu1 - mu0, if1 - if0, clusters, level, "influence function with propensity-model correction, clustered by child"), (mu1, mu0, if1, if0)


def regression_estimate(y, t, X, clusters, estimand="ATE", level=0.95):
    """Regression adjustment (g-computation): a logistic model of re-referral in each arm,
    predictions averaged over the target population; delta-method influence function."""
    n = len(y)
    b1, _, info1 = fit_logistic(X[t == 1], y[t == 1])
    b0, _, info0 = fit_logistic(X[t == 0], y[t == 0])
    m1 = 1 / (1 + np.exp(-np.clip(X @ b1, -30, 30)))
    m0 = 1 / (1 + np.exp(-np.clip(X @ b0, -30, 30)))
    # The information of the penalised fit that was actually solved: a covariate level absent
    # from one arm leaves the unpenalised matrix singular, and its inverse is noise (an interval
    # of +-1e14 points); the ridge's direction carries no score, so it adds nothing to the variance.
    I1 = info1 * (np.sum(t == 1) / n)
    I0 = info0 * (np.sum(t == 0) / n)
    U1 = X * (t * (y - m1))[:, None]
    U0 = X * ((1 - t) * (y - m0))[:, None]
    if estimand == "ATE":
        target = np.ones(n)
    else:
        target = t.astype(float)
    q = target.mean()
    tau = np.sum(target * (m1 - m0)) / np.sum(target)
    g1 = (X * (target * m1 * (1 - m1))[:, None]).mean(axis=0) / q
    g0 = (X * (target * m0 * (1 - m0))[:, None]).mean(axis=0) / q
    infl = target * (m1 - m0 - tau) / q + U1 @ np.linalg.solve(I1, g1) - U0 @ np.linalg.solve(I0, g0)
    return _from_if(tau, infl, clusters, level, "delta-method influence function, clustered by child"), (m1, m0)


def aipw_estimate(y, t, e, m1, m0, clusters, estimand="ATE", level=0.95):
    """Augmented IPW (doubly robust): consistent if either the propensity or the outcome
    model is right; influence-function errors. Returns the estimate and the potential-outcome
    means with their influence values (used for the risk ratio and its E-value)."""
    n = len(y)
    if estimand == "ATE":
        phi1 = m1 + t * (y - m1) / e
        phi0 = m0 + (1 - t) * (y - m0) / (1 - e)
        mu1, mu0 = phi1.mean(), phi0.mean()
        if1, if0 = phi1 - mu1, phi0 - mu0
    else:
        p = t.mean()
        mu1 = y[t == 1].mean()
        phi0 = t * m0 + (1 - t) * e / (1 - e) * (y - m0)
        mu0 = phi0.sum() / t.sum()
        if1 = t * (y - mu1) / p
        if0 = (phi0 - t * mu0) / p
    assert n == len(t)
    return _from_if(mu1 - mu0, if1 - if0, clusters, level, "influence function (doubly robust), clustered by child"), (mu1, mu0, if1, if0)


def _match(src_e: np.ndarray, pool_e: np.ndarray, pool_y: np.ndarray, tol: float = 1e-12):
    """Nearest neighbour(s) in ``pool`` for each ``src`` score, ties averaged (Abadie & Imbens).

    Returns the imputed outcome for each src, and for each pool unit K (times used, each use
    weighted 1/#matches) and L (sum of 1/#matches squared), for the variance."""
    u, inv, cnt = np.unique(pool_e, return_inverse=True, return_counts=True)
    ysum = np.bincount(inv, weights=pool_y, minlength=len(u))
    pos = np.searchsorted(u, src_e)
    lo, hi = np.clip(pos - 1, 0, len(u) - 1), np.clip(pos, 0, len(u) - 1)
    dl, dh = np.abs(src_e - u[lo]), np.abs(u[hi] - src_e)
    use_lo = dl <= dh + tol
    use_hi = (dh <= dl + tol) & ~(use_lo & (lo == hi))
    size = use_lo * cnt[lo] + use_hi * cnt[hi]
    yhat = (use_lo * ysum[lo] + use_hi * ysum[hi]) / size
    k = np.bincount(lo[use_lo], 1 / size[use_lo], len(u)) + np.bincount(hi[use_hi], 1 / size[use_hi], len(u))
    l2 = np.bincount(lo[use_lo], 1 / size[use_lo] ** 2, len(u)) + np.bincount(hi[use_hi], 1 / size[use_hi] ** 2, len(u))
    return yhat, k[inv], l2[inv]


def _within_variance(e_g: np.ndarray, y_g: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Conditional outcome variance of each unit from its nearest same-group neighbours
    (Abadie & Imbens 2006: J/(J+1) * (Y - mean of the J matches)^2)."""
    u, inv, cnt = np.unique(e_g, return_inverse=True, return_counts=True)
    ysum = np.bincount(inv, weights=y_g, minlength=len(u))
    same = cnt[inv] > 1
    lo, hi = inv - 1, inv + 1
    vlo, vhi = lo >= 0, hi < len(u)
    lo_c, hi_c = np.clip(lo, 0, len(u) - 1), np.clip(hi, 0, len(u) - 1)
    dl = np.where(vlo, u[inv] - u[lo_c], np.inf)
    dh = np.where(vhi, u[hi_c] - u[inv], np.inf)
    ul = vlo & (dl <= dh + tol)
    uh = vhi & (dh <= dl + tol)
    size = np.where(same, cnt[inv] - 1, ul * cnt[lo_c] + uh * cnt[hi_c])
    total = np.where(same, ysum[inv] - y_g, ul * ysum[lo_c] + uh * ysum[hi_c])
    size = np.maximum(size, 1)
    return size / (size + 1) * (y_g - total / size) ** 2


def matching_estimate(y, t, e, estimand="ATE", level=0.95):
    """1:1 nearest-neighbour matching on the propensity score with replacement (as DoWhy's
    propensity_score_matching; tied neighbours averaged) and the Abadie-Imbens (2006)
    variance: the bootstrap is not valid for this estimator. It ignores the estimation of
    the propensity score, which is conservative for the ATE (Abadie & Imbens 2016)."""
    y = y.astype(float)
    i1, i0 = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    y1hat, y0hat = y.copy(), y.copy()
    K, L = np.zeros(len(y)), np.zeros(len(y))
    y0hat[i1], K[i0], L[i0] = _match(e[i1], e[i0], y[i0])
    if estimand == "ATE":
        y1hat[i0], K[i1], L[i1] = _match(e[i0], e[i1], y[i1])
    sigma2 = np.zeros(len(y))
    for grp in (i1, i0):
        if len(grp) > 1:
            sigma2[grp] = _within_variance(e[grp], y[grp])
    if estimand == "ATE":
        tau = float(np.mean(y1hat - y0hat))
        n = len(y)
        var = (np.sum((y1hat - y0hat - tau) ** 2) + np.sum((K**2 + 2 * K - L) * sigma2)) / n**2
    else:
        tau = float(np.mean(y[i1] - y0hat[i1]))
        var = (np.sum((y[i1] - y0hat[i1] - tau) ** 2) + np.sum(((1 - t) * (K**2 - L)) * sigma2)) / len(i1) ** 2
    se = math.sqrt(max(var, 0.0))
    z = _z(level)
    return Estimate(tau, tau - z * se, tau + z * se, se, "Abadie-Imbens matching variance")


# --------------------------------------------------------------------------------------
# Weights, trimming, balance
# --------------------------------------------------------------------------------------


def weights_for(t, e, estimand="ATE"):
    """Inverse probability weights: ATE weights 1/e and 1/(1-e); ATT weights 1 and e/(1-e)."""
    if estimand == "ATE":
        return np.where(t == 1, 1 / e, 1 / (1 - e))
    return np.where(t == 1, 1.0, e / (1 - e))


def crump_alpha(e: np.ndarray) -> float:
    """Crump, Hotz, Imbens & Mitnik (2009) optimal trimming threshold: keep alpha <= e <= 1-alpha."""
    g = 1.0 / (e * (1 - e))
    if g.max() <= 2 * g.mean():
        return 0.0
    gs = np.sort(g)
    csum = np.cumsum(gs) / np.arange(1, len(gs) + 1)
    # smallest gamma with gamma >= 2 * mean(g | g <= gamma)
    ok = gs >= 2 * csum
    gamma = gs[np.argmax(ok)] if ok.any() else gs[-1]
    return float(0.5 - math.sqrt(max(0.25 - 1.0 / gamma, 0.0)))


def kish_ess(w: np.ndarray) -> float:
    """Kish's effective sample size of a weighted group."""
    return float(w.sum() ** 2 / np.sum(w**2)) if len(w) else 0.0


def balance_table(design: Design, t: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    """Standardised mean differences before and after weighting, both over the same pooled
    unweighted SD, so that a change is a change in the means, not in the yardstick."""
    rows = []
    raw = design.raw  # type: ignore[attr-defined]
    for j in design.balance_columns:
        x = raw[:, j]
        x1, x0 = x[t == 1], x[t == 0]
        sd = math.sqrt((x1.var(ddof=1) + x0.var(ddof=1)) / 2) if len(x1) > 1 and len(x0) > 1 else float("nan")
        before = (x1.mean() - x0.mean()) / sd if sd > 0 else 0.0
        wm1 = np.average(x1, weights=w[t == 1])
        wm0 = np.average(x0, weights=w[t == 0])
        after = (wm1 - wm0) / sd if sd > 0 else 0.0
        rows.append({"covariate": design.names[j], "smd_before": before, "smd_after": after})
    return pd.DataFrame(rows, columns=["covariate", "smd_before", "smd_after"])


# --------------------------------------------------------------------------------------
# Weighted Kaplan-Meier and RMST by arm (the estimators are stats/survival's weighted_km, km_steps, step_area)
# --------------------------------------------------------------------------------------


class _SurvivalFit:
    """Weighted KM for two fixed arms, sorted once, so each bootstrap replicate costs O(n)."""

    def __init__(self, time, event, horizon, t=None):
        self.horizon = horizon
        jumps = np.unique(time[(event == 1) & (time <= horizon)])
        self.grid = np.unique(np.concatenate([[0.0], jumps, [float(horizon)]]))
        self._arms = {}
        if t is not None:
            for v in (1, 0):
                idx = np.flatnonzero(t == v)
                order = idx[np.argsort(time[idx], kind="stable")]
                tt = time[order]
                uniq, start = np.unique(tt, return_index=True)
                pos = np.searchsorted(uniq, self.grid, side="right") - 1
                self._arms[v] = (order, event[order].astype(float), start, pos)

    def _curve(self, v, w):
        order, ee, start, pos = self._arms[v]
        return km_steps(w[order], ee, start, pos)

    def curves(self, time, event, t, w):
        if self._arms:
            return self._curve(1, w), self._curve(0, w)
        s1 = weighted_km(time[t == 1], event[t == 1], w[t == 1], self.grid)
        s0 = weighted_km(time[t == 0], event[t == 0], w[t == 0], self.grid)
        return s1, s0

    def summary(self, s1, s0):
        h = self.horizon
        r1, r0 = 1 - s1[-1], 1 - s0[-1]
        return r1 - r0, step_area(self.grid, s1, h) - step_area(self.grid, s0, h), r1, r0


def ipw_survival(tm, ev, t, Xp, beta_ps, clusters, horizon, estimand="ATE", reps=200, level=0.95, rng=None) -> dict:
    """Weighted Kaplan-Meier curves per arm, the risk, RMST difference and risk ratio at the
    horizon, with child-cluster bootstrap percentile intervals: children are resampled and the
    propensity model (design Xp, fitted coefficients beta_ps) refitted in each replicate, so the
    intervals carry the uncertainty of the weights. Fewer than 20 replicates: no intervals."""
    rng = np.random.default_rng(0) if rng is None else rng
    h = horizon
    e = np.clip(1 / (1 + np.exp(-np.clip(Xp @ beta_ps, -30, 30))), 1e-6, 1 - 1e-6)
    w = weights_for(t, e, estimand)
    sf = _SurvivalFit(tm, ev, h, t)
    s1, s0 = sf.curves(tm, ev, t, w)
    rd_km, rmst_d, r1, r0 = sf.summary(s1, s0)
    u1, u0 = sf.curves(tm, ev, t, np.ones_like(w))
    naive_rd_km, naive_rmst, _, _ = sf.summary(u1, u0)
    B = reps
    boot = np.full((B, 3), np.nan)  # risk difference, RMST difference, log risk ratio
    curves1 = np.full((B, len(sf.grid)), np.nan)
    curves0 = np.full((B, len(sf.grid)), np.nan)
    n_cl = clusters.max() + 1
    for i in range(B):
        cnt = np.bincount(rng.integers(0, n_cl, n_cl), minlength=n_cl)[clusters].astype(float)
        if cnt[t == 1].sum() == 0 or cnt[t == 0].sum() == 0:
            continue
        _, eb_i, _ = fit_logistic(Xp, t, cnt, beta0=beta_ps, max_iter=15, tol=1e-7)
        eb_i = np.clip(eb_i, 1e-6, 1 - 1e-6)
        wi = weights_for(t, eb_i, estimand) * cnt
        a1, a0 = sf.curves(tm, ev, t, wi)
        rd_i, rm_i, r1_i, r0_i = sf.summary(a1, a0)
        boot[i] = rd_i, rm_i, (math.log(r1_i / r0_i) if r1_i > 0 and r0_i > 0 else np.nan)
        curves1[i], curves0[i] = a1, a0
    alpha = 1 - level
    if B >= 20:
        q = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
        # the standard error that goes with the percentile interval (its half-width over z): the plain
        # SD of the replicates is swayed by the odd replicate whose refitted propensity nearly separates
        sd = (q[1] - q[0]) / (2 * _z(level))
        how = f"child-cluster bootstrap, {B} replicates, propensity refitted each time (percentile)"
        rd_est = Estimate(rd_km, float(q[0, 0]), float(q[1, 0]), float(sd[0]), how)
        rm_est = Estimate(rmst_d, float(q[0, 1]), float(q[1, 1]), float(sd[1]), how)
        rr_km = Estimate(r1 / r0, float(math.exp(q[0, 2])), float(math.exp(q[1, 2])), float(sd[2]), how + " (se on the log scale)")
        c1 = np.nanquantile(curves1, [alpha / 2, 1 - alpha / 2], axis=0)
        c0 = np.nanquantile(curves0, [alpha / 2, 1 - alpha / 2], axis=0)
    else:
        rd_est = Estimate(rd_km, float("nan"), float("nan"), float("nan"), "none")
        rm_est = Estimate(rmst_d, float("nan"), float("nan"), float("nan"), "none")
        rr_km = None
        c1 = c0 = np.full((2, len(sf.grid)), np.nan)
    return {"fit": sf, "s1": s1, "s0": s0, "c1": c1, "c0": c0, "risk_difference": rd_est, "rmst_difference": rm_est,
            "risk_ratio": rr_km, "r1": r1, "r0": r0, "naive_risk_difference": naive_rd_km,
            "naive_rmst_difference": naive_rmst}


# --------------------------------------------------------------------------------------
# E-values (VanderWeele & Ding 2017)
# --------------------------------------------------------------------------------------


def evalue_rr(rr: float) -> float:
    """E-value for a risk ratio: the strength of association (risk-ratio scale) an unmeasured
    confounder would need with both treatment and outcome to explain the estimate away."""
    if not np.isfinite(rr) or rr <= 0:
        return float("nan")
    if rr < 1:
        rr = 1 / rr
    return float(rr + math.sqrt(rr * (rr - 1)))


def hr_to_rr(hr: float, common: bool = True) -> float:
    """Hazard ratio to an approximate risk ratio: as is for a rare outcome (< 15%), else
    VanderWeele's (2020) square-root conversion (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))."""
    if not common:
        return hr
    return (1 - 0.5 ** math.sqrt(hr)) / (1 - 0.5 ** math.sqrt(1 / hr))


def evalue(estimate: float, ci_low: float, ci_high: float, scale: str = "RR", *, common: bool = True) -> dict:
    """E-values for an estimate and for the confidence limit nearer the null (1 if the
    interval crosses the null). ``scale`` is RR or HR (converted to RR)."""
    conv = (lambda v: hr_to_rr(v, common)) if scale == "HR" else (lambda v: v)
    est, lo, hi = conv(estimate), conv(ci_low), conv(ci_high)
    if lo <= 1 <= hi:
        ci_e = 1.0
    elif est > 1:
        ci_e = evalue_rr(lo)
    else:
        ci_e = evalue_rr(hi)
    return {"estimate": evalue_rr(est), "ci": ci_e, "risk_ratio": est, "scale": scale}


# --------------------------------------------------------------------------------------
# DoWhy: model, identification, cross-checks and refuters
# --------------------------------------------------------------------------------------


def _dowhy_frame(frame: pd.DataFrame, covariates, outcome_col="outcome_binary") -> pd.DataFrame:
    d = frame[covariates].copy()
    d[TREATMENT_NODE] = frame["treatment"].astype(int).to_numpy()
    d[OUTCOME_NODE] = frame[outcome_col].astype(float).to_numpy()
    return d


def _causal_model_class():
    """dowhy.CausalModel, imported quietly: importing DoWhy warns about tqdm's notebook widgets
    and pyparsing names, which would otherwise appear in every report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from dowhy import CausalModel
    logging.getLogger("dowhy").setLevel(logging.ERROR)
    return CausalModel


def identify(graph: nx.DiGraph, frame: pd.DataFrame, covariates):
    """DoWhy's causal model and the back-door adjustment set implied by the graph."""
    CausalModel = _causal_model_class()

    data = _dowhy_frame(frame.dropna(subset=["outcome_binary"]) if frame["outcome_binary"].notna().any() else frame, covariates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CausalModel(data=data, treatment=TREATMENT_NODE, outcome=OUTCOME_NODE, graph=nx.DiGraph(graph))
        estimand = model.identify_effect(proceed_when_unidentifiable=False)
    backdoor = estimand.get_backdoor_variables() or []
    return model, estimand, [c for c in covariates if c in backdoor]


def _sk_logit():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(penalty=None, max_iter=2000)


def dowhy_crosscheck(model, estimand, e: np.ndarray, target: str) -> dict:
    """DoWhy's own weighting and matching estimates on our propensity scores (they must agree)."""
    out = {}
    data = model._data.copy()
    data["propensity_score"] = e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, method, extra in (
            ("ipw", "backdoor.propensity_score_weighting", {"weighting_scheme": "ips_normalized_weight", "min_ps_score": 0.0, "max_ps_score": 1.0}),
            ("matching", "backdoor.propensity_score_matching", {}),
        ):
            old = model._data
            model._data = data
            try:
                extra["need_conditional_estimates"] = False
                est = model.estimate_effect(estimand, method_name=method, target_units=target.lower(),
                                            effect_modifiers=[], method_params={"init_params": extra})
                out[name] = float(est.value)
            finally:
                model._data = old
    return out


#: How far a refuter's average may move by chance alone, in standard errors of that average
#: (a check fails by chance about 1 time in 20).
REFUTER_Z = 1.96


def refuter_limit(name: str, se: float | None, simulations: int, estimated_effect: float) -> float:
    """How far from where it should be a refuter's result may land before the check fails.

    With the estimate's standard error ``se`` (on the refuters' sample): a permuted treatment's
    effect varies about like the estimate itself, an 80% subset's estimate differs from the
    whole sample's by sqrt(1/0.8 - 1) = 0.5 of it, and a random extra covariate moves it less;
    each check averages ``simulations`` runs. Without a standard error: a quarter of the estimate
    or 2 points, whichever is more.
    """
    if se is None or not np.isfinite(se) or se <= 0:
        return max(0.25 * abs(estimated_effect), 0.02)
    spread = se if name == "placebo_treatment" else 0.5 * se
    return max(REFUTER_Z * spread / math.sqrt(max(simulations, 1)), 0.005)


def refute(graph, frame: pd.DataFrame, covariates, estimand_type: str, *, simulations: int, sample: int, seed: int,
           se: float | None = None) -> dict:
    """DoWhy's placebo-treatment, random-common-cause and data-subset refuters on the
    weighting estimator, kept quick: few simulations, on a random subsample if large.
    ``se`` is the weighting estimate's standard error on the whole frame, which sets how far
    chance alone may move each check (refuter_limit)."""
    if simulations <= 0:
        return {}
    CausalModel = _causal_model_class()

    d = frame.dropna(subset=["outcome_binary"])
    if len(d) > sample:
        d = d.sample(sample, random_state=seed)
    data = _dowhy_frame(d, covariates).reset_index(drop=True)
    columns = list(data.columns)
    out: dict[str, dict] = {}
    logging.getLogger("dowhy").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CausalModel(data=data, treatment=TREATMENT_NODE, outcome=OUTCOME_NODE, graph=nx.DiGraph(graph))
        ident = model.identify_effect(proceed_when_unidentifiable=False)
        est = model.estimate_effect(
            ident, method_name="backdoor.propensity_score_weighting", target_units=estimand_type.lower(),
            effect_modifiers=[],
            method_params={"init_params": {"weighting_scheme": "ips_normalized_weight", "propensity_score_model": _sk_logit(),
                                           "min_ps_score": 0.01, "max_ps_score": 0.99, "need_conditional_estimates": False}},
        )
        # DoWhy's weighting estimator stores the fitted propensity in the model's data; refuters
        # must refit it on their altered data, so drop it (else the placebo reuses it)
        model._data = data.loc[:, columns].copy()
        np.random.seed(seed)
        for name, method, kw in (
            ("placebo_treatment", "placebo_treatment_refuter", {"placebo_type": "permute"}),
            ("random_common_cause", "random_common_cause", {}),
            ("data_subset", "data_subset_refuter", {"subset_fraction": 0.8}),
        ):
            t0 = time.perf_counter()
            try:
                r = model.refute_estimate(ident, est, method_name=method, num_simulations=simulations,
                                          random_state=seed, **kw)
                res = r.refutation_result or {}
                out[name] = {
                    "estimated_effect": float(r.estimated_effect), "new_effect": float(r.new_effect),
                    "p_value": float(res.get("p_value")) if res.get("p_value") is not None else None,
                    "simulations": simulations, "rows": len(data), "seconds": round(time.perf_counter() - t0, 2),
                }
            except Exception as exc:  # a refuter failing must not lose the analysis
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    n_all = int(frame["outcome_binary"].notna().sum())
    se_sample = None if se is None else float(se) * math.sqrt(n_all / max(len(data), 1))
    for name, r in out.items():
        if "error" in r:
            r["passed"] = None
            continue
        r["limit"] = refuter_limit(name, se_sample, simulations, r["estimated_effect"])
        # a permuted (meaningless) treatment should have about no effect; adding noise or
        # dropping 20% of episodes should leave the estimate about where it was
        should_be = 0.0 if name == "placebo_treatment" else r["estimated_effect"]
        r["passed"] = bool(abs(r["new_effect"] - should_be) <= r["limit"])
    return out


# --------------------------------------------------------------------------------------
# The whole analysis
# --------------------------------------------------------------------------------------


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
            rows.append({"comparison": label, "estimate": est.estimate * scale, "ci_low": est.ci_low * scale,
                         "ci_high": est.ci_high * scale, "unit": unit, "interval": est.method})

        add("Naive difference in re-referral within horizon", self.naive["risk_difference"], 100, "percentage points")
        labels = {"ipw": "Inverse probability weighting", "matching": "Propensity-score matching",
                  "regression": "Regression adjustment", "aipw": "Doubly robust (AIPW)"}
        for k, v in self.methods.items():
            add(f"{labels.get(k, k)}: difference in re-referral", v, 100, "percentage points")
        add("Weighted Kaplan-Meier: difference in risk of re-referral", self.effect["risk_difference"], 100, "percentage points")
        add("Weighted Kaplan-Meier: difference in days before re-referral (RMST)", self.effect["rmst_difference"], 1, "days")
        add("Weighted Cox: hazard ratio", self.effect["hazard_ratio"], 1, "ratio")
        return pd.DataFrame(rows)

    def balance_summary(self) -> pd.DataFrame:
        b = self.balance.copy()
        b["balanced_after"] = b["smd_after"].abs() < 0.1
        return b

    def counts_table(self) -> pd.DataFrame:
        """Closed cases by group, with a total row (counts: pass through insightlib.report.disclosure before showing)."""
        c = self.counts
        h = self.parameters.get("horizon_days")
        df = pd.DataFrame({
            "Closed cases analysed": [c["analysed_treated"], c["analysed_control"]],
            f"Followed for the whole {h} days": [c["binary_treated"], c["binary_control"]],
            f"Re-referred within {h} days": [c["rereferred_treated"], c["rereferred_control"]],
        }, index=["Received the intervention", "Did not"])
        df.loc["Total"] = df.sum()
        return df

    def safe_counts_table(self, threshold: int = 5, rounding: int | None = None) -> pd.DataFrame:
        """counts_table with small numbers suppressed (insightlib.report.disclosure; the total row makes it
        apply secondary suppression, so a hidden count cannot be worked out from the total)."""
        from insightlib.report import disclosure

        df = self.counts_table()
        # the sentences under "The finding" state how many closed cases were analysed: that total is
        # published there, so it is never the cell hidden to protect another
        known = {("Total", "Closed cases analysed"): int(df.loc["Total", "Closed cases analysed"])}
        res = disclosure.suppress_table(df, list(df.columns), threshold, rounding, total_row="Total", known=known)
        out = res.table().map(lambda v: f"{int(v):,}" if isinstance(v, (int, np.integer, float, np.floating)) and np.isfinite(v) else v)
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
        return (f"the {self.counts['analysed']:,} closed cases where children who did and did not receive it were "
                f"comparable ({share:.0%} of {total:,} were set aside for poor overlap)")

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
        if rd.ci_high < 0:
            verdict = f"re-referral within {when} of a case closing was {size:.1f} percentage points lower"
        elif rd.ci_low > 0:
            verdict = f"re-referral within {when} of a case closing was {size:.1f} percentage points higher"
        else:
            verdict = f"there is no clear difference in re-referral within {when} of a case closing"
        return (f"{text.md(p['intervention'])}: allowing for which children received it, {verdict} "
                f"({_points_range(rd.ci_low, rd.ci_high)}; {self._level()} interval).")

    # ---- tables (aggregates only; counts pass through insightlib.report.disclosure) -------------
    def report_table(self) -> pd.DataFrame:
        """The naive comparison beside every adjusted estimate, formatted for the report."""
        labels = {"ipw": "Inverse probability weighting", "matching": "Propensity-score matching (1:1)",
                  "regression": "Regression adjustment", "aipw": "Doubly robust (AIPW)"}
        h = self.parameters["horizon_days"]
        rows = {}
        unstable = []

        def pts(e: Estimate) -> tuple[str, str]:
            # a difference in shares lies between -100 and +100 points; an interval outside that (or missing)
            # means the variance broke down, and printing it would mislead
            if not (np.isfinite(e.ci_low) and np.isfinite(e.ci_high)) or e.ci_low < -1 or e.ci_high > 1:
                unstable.append(e)
                return f"{100 * e.estimate:+.1f} points", "could not be worked out (unstable)"
            return f"{100 * e.estimate:+.1f} points", f"{100 * e.ci_low:+.1f} to {100 * e.ci_high:+.1f}"

        # short names of how each interval was made (the full description is in results.json)
        how = {"naive": "influence function", "ipw": "influence function, propensity model allowed for",
               "matching": "Abadie-Imbens variance", "regression": "delta method", "aipw": "influence function"}
        boot = f"bootstrap of children ({self.parameters.get('bootstrap_reps', '')} samples)"
        n = self.naive["risk_difference"]
        rows[f"Simple comparison (no adjustment): re-referred within {h} days"] = (
            (*pts(n), how["naive"]) if self.naive_shown() else ("c", "c", how["naive"]))
        for k, v in self.methods.items():
            rows[f"{labels.get(k, k)}: re-referred within {h} days"] = (*pts(v), how.get(k, ""))
        rd, rm, hr = self.effect["risk_difference"], self.effect["rmst_difference"], self.effect["hazard_ratio"]
        rows[f"Weighted Kaplan-Meier: re-referred by day {h} (headline)"] = (*pts(rd), boot)
        rows[f"Weighted Kaplan-Meier: days free of re-referral in the first {h} (RMST)"] = (
            f"{rm.estimate:+.1f} days", f"{rm.ci_low:+.1f} to {rm.ci_high:+.1f}", boot)
        rows["Weighted Cox: hazard ratio (below 1: re-referral slower)"] = (
            f"{hr.estimate:.2f}", f"{hr.ci_low:.2f} to {hr.ci_high:.2f}", "robust (sandwich)")
        out = pd.DataFrame.from_dict(rows, orient="index", columns=["Estimate", f"{self._level()} interval", "How the interval was worked out"])
        out.index.name = None
        out.columns.name = "Comparison"
        if not self.naive_shown():
            out.attrs["note"] = (f"c: the simple comparison is hidden because a group has fewer than {self._threshold()} "
                                 "children re-referred (or not re-referred); with the group sizes it would give that "
                                 "number away.")
        if unstable:
            out.attrs["note"] = out.attrs.get("note", "") + (" " if out.attrs.get("note") else "") + \
                 ("An interval marked 'could not be worked out' came out wider than any difference in shares "
                                 "can be (beyond 100 points either way): its variance calculation was numerically unstable on "
                                 "these data, so only the estimate is shown. The other rows are unaffected.")
        return out

    def balance_view(self) -> pd.DataFrame:
        """The love plot as a table: standardised differences before and after weighting."""
        b = self.balance.sort_values("smd_before", key=np.abs, ascending=False)
        out = pd.DataFrame({
            "Before weighting": b["smd_before"].map(lambda v: f"{v:+.3f}").to_numpy(),
            "After weighting": b["smd_after"].map(lambda v: f"{v:+.3f}").to_numpy(),
            "Balanced (under 0.1)": np.where(b["smd_after"].abs() < 0.1, "yes", "no"),
        }, index=[_term_label(c) for c in b["covariate"]])
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
                    if ok else "too few to show"
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
            allowed = f"within {100 * r['limit']:.1f} points of {'zero' if k == 'placebo_treatment' else 'the estimate'}" if "limit" in r else ""
            rows[labels.get(k, k)] = (f"{100 * r['estimated_effect']:+.1f} points", f"{100 * r['new_effect']:+.1f} points",
                                      allowed, {True: "yes", False: "no", None: "could not run"}[r.get("passed")])
        out = pd.DataFrame.from_dict(rows, orient="index",
                                     columns=["Estimate before the change", "After the change", "Passes if", "Passed"])
        out.columns.name = "Check"
        return out

    def refutation_words(self) -> str:
        ok = [r for r in self.refutations.values() if "error" not in r]
        if not self.refutations:
            return "The robustness checks were not run (refutation_simulations in the evaluation file is 0)."
        rows = ok[0]["rows"] if ok else 0
        sims = ok[0]["simulations"] if ok else 0
        passed = sum(1 for r in self.refutations.values() if r.get("passed"))
        return (f"Each check re-ran the weighting estimate of re-referral within "
                f"{self.parameters['horizon_days']} days on a random sample of {rows:,} closed cases, "
                f"{'once' if sims == 1 else f'{sims} times'}, so its starting estimate differs a little from the headline. "
                f"{passed} of {len(self.refutations)} checks passed."
                + ("" if passed == len(self.refutations) else
                   " A check passes when the estimate after the change lands as near to where it should be "
                   "(zero for the random intervention, the starting estimate for the others) as chance alone "
                   "would usually put it, judged from the estimate's own uncertainty; a check fails by chance "
                   "about 1 time in 20, so a check that did not pass is a reason for caution rather than proof "
                   "that the estimate is wrong."))

    def evalue_words(self) -> str:
        """What strength of unmeasured confounding would overturn the finding, in words."""
        ev = self.e_value.get("risk_ratio", {})
        hr = self.e_value.get("hazard_ratio", {})
        if not ev:
            return ""
        rr = ev["risk_ratio"]
        conversion = ("converted to a risk ratio with VanderWeele's square-root rule, as re-referral is common"
                      if self.e_value.get("outcome_common") else "taken as a risk ratio, as re-referral is rare here")
        crosses = ev.get("ci") == 1.0
        lines = [
            f"The adjusted risk ratio is {rr:.2f} (re-referral by day {self.parameters['horizon_days']} with the intervention as a "
            f"share of re-referral without it). Its E-value is **{ev['estimate']:.2f}**: an unmeasured factor would have to make "
            f"children about {ev['estimate']:.2f} times as likely to receive the intervention, and (separately) about "
            f"{ev['estimate']:.2f} times as likely to be re-referred, over and above the characteristics allowed for, to "
            f"explain the whole effect away. Weaker confounding could not.",
            ("The interval already includes no effect, so no unmeasured confounding is needed to make the result "
             "inconclusive." if crosses else
             f"To shift the interval so that it includes no effect would take such a factor of strength "
             f"**{ev['ci']:.2f}** with both."),
        ]
        if hr:
            lines.append(f"For the hazard ratio ({self.effect['hazard_ratio'].estimate:.2f}, {conversion}) the E-value is "
                         f"{hr['estimate']:.2f}, and {hr['ci']:.2f} for its interval.")
        return " ".join(lines)

    def alt_text(self, figure: str) -> str:
        rd = self.effect["risk_difference"]
        if figure == "love":
            b = self.to_dict()["balance"]
            return (f"Dot plot of standardised differences for {len(self.balance)} characteristics: the largest was "
                    f"{b['max_abs_smd_before']:.2f} before weighting and {b['max_abs_smd_after']:.2f} after.")
        if figure == "overlap":
            q = self.overlap["propensity_quantiles"]
            lo, hi = self.overlap.get("trim_low", 0.0), self.overlap.get("trim_high", 1.0)
            kept = (f" Episodes outside {lo:.2f} to {hi:.2f} ({self._n(self.overlap.get('trimmed_total', 0))}) were set aside."
                    if lo > 0 or hi < 1 else " None were set aside.")
            return (f"Histograms of the estimated chance of receiving the intervention: median {q['treated'][50]:.2f} "
                    f"among those who received it and {q['control'][50]:.2f} among those who did not.{kept}")
        return (f"Adjusted cumulative re-referral curves up to day {self.parameters['horizon_days']}: "
                f"{100 * self.risks['treated']:.1f}% with the intervention and {100 * self.risks['control']:.1f}% without "
                f"(difference {100 * rd.estimate:.1f} points, {self._level()} interval {100 * rd.ci_low:.1f} to {100 * rd.ci_high:.1f}).")

    # ---- charts --------------------------------------------------------------------
    def love_plot(self):
        from insightlib.report.charts import DARK_BLUE, ORANGE, REFERENCE_GREY, new_figure

        b = self.balance.sort_values("smd_before", key=np.abs)
        after_max = b["smd_after"].abs().max() if len(b) else 0
        title = (f"After weighting, all characteristics are balanced (largest {after_max:.2f})" if after_max < 0.1
                 else f"After weighting, the largest difference is still {after_max:.2f}")
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
        title = (f"{trimmed / total:.0%} of closed cases were set aside for poor overlap between the groups"
                 if trimmed else "Children who did and did not receive it overlapped across the range")
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
        if rd.ci_high < 0 or rd.ci_low > 0:
            word = "lower" if rd.estimate < 0 else "higher"
            title = f"Adjusted for who received it, re-referral was {abs(rd.estimate) * 100:.0f} points {word} by day {self.parameters['horizon_days']}"
        else:
            title = f"Adjusted for who received it, no clear difference in re-referral by day {self.parameters['horizon_days']}"
        fig, ax = new_figure(title)
        for arm, colour, label in (("treated", ORANGE, "With the intervention"), ("control", DARK_BLUE, "Without")):
            ok = s[f"{arm}_shown"]
            ax.step(s["day"][ok], 1 - s[f"{arm}_survival"][ok], where="post", color=colour, label=label)
            ax.fill_between(s["day"][ok], 1 - s[f"{arm}_ci_high"][ok], 1 - s[f"{arm}_ci_low"][ok], step="post", color=colour, alpha=0.15)
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
            meaning = (f"This compares re-referral if every child in the analysis had received it with re-referral if none "
                       f"had, among {self.population_words()}.")
        else:
            meaning = (f"This compares the children who received it with what would have happened to the same "
                       f"children without it, among {self.population_words()}.")
        if rd.ci_high < 0 or rd.ci_low > 0:
            sure = "The interval does not include zero, so chance alone is an unlikely explanation."
        else:
            sure = "The interval includes zero: the data are consistent with no effect."
        aipw = self.methods.get("aipw")
        simple = (
            f"**Simple comparison.** Comparing the two groups as they are gives {100 * nv.estimate:+.1f} points "
            f"({_points_range(nv.ci_low, nv.ci_high)}) among closed cases followed for the whole {h} days"
            + (f", against {100 * aipw.estimate:+.1f} points once the groups are made alike (doubly robust estimate on the "
               f"same cases)" if aipw is not None else "")
            + ". The gap is the part explained by which children were chosen for the intervention."
        ) if self.naive_shown() else (
            f"**Simple comparison.** Not shown: a group has fewer than {self._threshold()} children re-referred (or not "
            "re-referred) among closed cases followed for the whole period, and with the group sizes the comparison "
            "would give that number away.")
        lines = [f"**Finding.** {self.headline()} {meaning} {sure}", simple]
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
    disclosure_threshold: int = 5,
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
        return _evaluate(tables, intervention=intervention, horizon_days=horizon_days, covariates=covariates,
                         graph=graph, estimand=estimand, frame=frame, episodes=episodes,
                         disclosure_threshold=disclosure_threshold, **options)


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
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    params = check_parameters({"intervention": intervention, "horizon_days": horizon_days, "covariates": covariates,
                               "graph": graph, "estimand": estimand, **options})
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
        notes.append(f"By the graph, these are not needed to block back-door paths and are not adjusted for: {', '.join(not_adjusted)}.")
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
        notes.append(f"Fewer than {int(disclosure_threshold)} closed cases fell outside the overlap limits "
                     f"({lo:.3f} to {hi:.3f}); they were kept, since setting so few aside would give their number away.")
        keep = np.ones(n_all, bool)
        lo, hi = 0.0, 1.0
    trimmed = {"treated": int(((~keep) & (t == 1)).sum()), "control": int(((~keep) & (t == 0)).sum())}
    if (~keep).any():
        notes.append(
            f"{_safe_split(trimmed['treated'], trimmed['control'], int(disclosure_threshold))} were set aside: their "
            f"estimated chance of receiving the intervention was outside {lo:.3f} to {hi:.3f} (rule: "
            f"{'Crump et al. 2009' if trim == 'crump' else 'fixed limits'}). The estimates describe the children with overlap."
        )
    overlap = {
        "rule": trim if isinstance(trim, str) else "fixed", "trim_low": float(lo), "trim_high": float(hi),
        "trimmed": trimmed, "trimmed_total": int((~keep).sum()),
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
    if len(balance) and balance["smd_after"].abs().max() >= 0.1:
        worst = balance.loc[balance["smd_after"].abs().idxmax()]
        notes.append(
            f"After weighting, {_term_label(worst['covariate'])} still differs between the groups (standardised difference "
            f"{worst['smd_after']:+.2f}; 0.1 is the usual limit). A few heavily weighted cases are probably responsible: "
            f"consider trimming (trim: crump) or check the overlap plot."
        )
    ess = {"treated": kish_ess(w[t == 1]), "control": kish_ess(w[t == 0]),
           "treated_n": int((t == 1).sum()), "control_n": int((t == 0).sum())}
    seconds["propensity"] = time.perf_counter() - t0

    # -- yes/no outcome within the horizon -----------------------------------------------
    t0 = time.perf_counter()
    b = f["outcome_binary"].notna().to_numpy()
    yb, tb, Xb = f.loc[b, "outcome_binary"].to_numpy(float), t[b], X[b]
    cb = pd.factorize(f.loc[b, "child_id"])[0]
    counts = {
        "episodes": n_all, "treated": n_treated_all, "control": n_all - n_treated_all,
        "analysed": int(len(f)), "analysed_treated": int((t == 1).sum()), "analysed_control": int((t == 0).sum()),
        "children": int(clusters.max() + 1),
        "binary_analysed": int(b.sum()), "binary_treated": int(tb.sum()), "binary_control": int((1 - tb).sum()),
        "binary_excluded_incomplete_followup": int((~b).sum()),
        "rereferred_within_horizon": int(yb.sum()),
        "rereferred_treated": int(yb[tb == 1].sum()), "rereferred_control": int(yb[tb == 0].sum()),
    }
    methods: dict[str, Estimate] = {}
    if tb.sum() < 2 or (1 - tb).sum() < 2:
        raise InputError(f"Too few episodes with {h} days of follow-up in one of the groups to estimate the effect on re-referral within {h} days.")
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
    rr = Estimate(float(mu1 / mu0), float(math.exp(math.log(mu1 / mu0) - z * se_log)),
                  float(math.exp(math.log(mu1 / mu0) + z * se_log)), se_log, "delta method on the log scale")
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

    # survival curves on a weekly grid, cut where fewer than 10 (unweighted) remain at risk
    days = np.unique(np.concatenate([np.arange(0, h + 1, 7), [h]])).astype(float)
    pos = np.searchsorted(sf.grid, days, side="right") - 1
    surv = pd.DataFrame({"day": days.astype(int)})
    for arm, v, s_, c_ in (("treated", 1, s1, c1), ("control", 0, s0, c0)):
        at = np.array([np.sum((t == v) & (tm >= d)) for d in days])
        surv[f"{arm}_survival"] = s_[pos]
        surv[f"{arm}_ci_low"] = c_[0][pos]
        surv[f"{arm}_ci_high"] = c_[1][pos]
        surv[f"{arm}_at_risk"] = at
        surv[f"{arm}_shown"] = at >= 10

    # weighted Cox with child-clustered robust errors (lifelines)
    t0 = time.perf_counter()
    from lifelines import CoxPHFitter

    cdf = pd.DataFrame({"time": tm, "event": ev, "treatment": t, "w": w, "child": clusters})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter().fit(cdf, "time", "event", weights_col="w", robust=True, cluster_col="child")
    s = cph.summary.loc["treatment"]
    hr = Estimate(float(s["exp(coef)"]), float(math.exp(s["coef"] - z * s["se(coef)"])),
                  float(math.exp(s["coef"] + z * s["se(coef)"])), float(s["se(coef)"]),
                  "lifelines CoxPHFitter, weighted, robust (sandwich) errors clustered by child")
    # covariate-adjusted (conditional) Cox: comparable with a conditional hazard ratio (the
    # simulation's and synth's truth), not with the marginal one from the weighted Cox
    hr_cond = None
    if design is not None:
        from insightlib.stats.cox import cox_fit, robust_variance

        xc = np.column_stack([t, X[:, 1:]])
        xc = xc[:, np.r_[True, xc[:, 1:].std(axis=0) > 0]]
        try:
            # insightlib.stats.cox (Efron ties, linear-time child-clustered sandwich; checked against R)
            cf = cox_fit(tm, ev, xc)
            b0, se0 = float(cf.beta[0]), float(math.sqrt(robust_variance(cf, clusters)[0, 0]))
            hr_cond = Estimate(math.exp(b0), math.exp(b0 - z * se0), math.exp(b0 + z * se0), se0,
                               "Cox adjusted for the covariates (insightlib.stats.cox), robust errors clustered by child")
        except Exception as exc:
            notes.append(f"The covariate-adjusted Cox model could not be fitted: {type(exc).__name__}.")
    seconds["cox"] = time.perf_counter() - t0

    # the E-value goes with the headline (weighted KM risks at the horizon); without a bootstrap,
    # with the doubly robust risk ratio of the follow-up-complete cases
    effect = {"risk_difference": rd_est, "rmst_difference": rm_est, "hazard_ratio": hr,
              "risk_ratio": rr_km if rr_km is not None else rr, "risk_ratio_binary": rr,
              "risk_difference_binary": methods["aipw"]}
    rr = effect["risk_ratio"]
    if hr_cond is not None:
        effect["hazard_ratio_conditional"] = hr_cond
    naive["km_risk_difference"] = Estimate(naive_rd_km, float("nan"), float("nan"), float("nan"), "unweighted Kaplan-Meier, point only")
    naive["rmst_difference"] = Estimate(naive_rmst, float("nan"), float("nan"), float("nan"), "unweighted Kaplan-Meier, point only")
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
    refutations = refute(g, f, adjust, est_type, simulations=params["refutation_simulations"],
                         sample=params["refutation_sample"], seed=params["seed"], se=methods["ipw"].se)
    seconds["refuters"] = time.perf_counter() - t0
    from insightlib.analyses import scenarios as scenario_analysis
    from insightlib.analyses import subgroups as subgroup_analysis

    subs = subgroup_analysis.for_intervention(f.loc[b].reset_index(drop=True), yb, tb, eb, m1, m0, cb,
                                              params["subgroups"], level=level, disclosure_threshold=disclosure_threshold)

    scen = scenario_analysis.for_intervention(
        f, rd_est, shares=params["scenario_shares"], estimand=est_type, horizon_days=h, level=level,
        extract_date=scenario_analysis.extract_date_of(tables, f) if "closure_date" in f.columns else None)
    seconds["total"] = time.perf_counter() - t_start
    seconds = {k: round(v, 2) for k, v in seconds.items()}

    return InterventionEffect(
        parameters=params, counts=counts, adjustment_set=adjust, not_adjusted=not_adjusted, methods=methods,
        effect=effect, naive=naive, risks=risks, balance=balance, ess=ess, overlap=overlap, survival=surv,
        e_value=e_value, refutations=refutations, dowhy=dw, notes=notes, seconds=seconds,
        scenarios=scen, subgroups=subs, _ps={"treated": e_all[t_all == 1].copy(), "control": e_all[t_all == 0].copy()},
    )


# --------------------------------------------------------------------------------------
# A simulation with a known answer (used by the tests and the benchmark)
# --------------------------------------------------------------------------------------

SIM_GRAPH = """digraph {
  age_at_closure -> intervention;
  previous_referrals -> intervention; previous_referrals -> rereferral;
  had_cp_plan -> intervention; had_cp_plan -> rereferral;
  primary_need -> intervention; primary_need -> rereferral;
  intervention -> rereferral;
}"""
SIM_COVARIATES = ["age_at_closure", "previous_referrals", "had_cp_plan", "primary_need"]
_NEEDS = np.array(["N1", "N2", "N4", "N5"])
_NEED_P = np.array([0.45, 0.15, 0.25, 0.15])
_NEED_RISK = np.array([0.3, -0.4, 0.0, 0.2])
_NEED_PS = np.array([0.4, -0.6, 0.0, 0.3])


def _sim_x(rng, n):
    age = rng.uniform(0, 17, n)
    prev = np.minimum(rng.poisson(0.8, n), 6)
    cp = rng.random(n) < 0.2
    need = rng.choice(4, n, p=_NEED_P)
    return age, prev, cp, need


def _sim_rates(age, prev, cp, need, base_rate):
    lam = base_rate * np.exp(0.35 * prev + 0.6 * cp + _NEED_RISK[need])
    logit = -2.0 + 0.06 * (age - 8) + 0.55 * prev + 1.1 * cp + _NEED_PS[need]
    return lam, 1 / (1 + np.exp(-logit))


def simulate_frame(n: int = 4000, seed: int = 0, *, hazard_ratio: float = 0.7, horizon_days: int = 365,
                   base_rate: float = 1 / 900, followup_days: float = 1500.0, truth_draws: int = 1_000_000):
    """An analysis frame with confounded assignment and a known effect, plus the truths.

    Children who were re-referred before and those on a child protection plan are both
    likelier to receive the intervention and likelier to come back (confounding); the
    intervention multiplies the re-referral hazard by ``hazard_ratio`` for every child.
    Closures are spread over ``followup_days`` before the extract date; the 18th birthday
    is a competing event. Truths are exact given the covariates, averaged over a large draw.
    """
    rng = np.random.default_rng(seed)
    age, prev, cp, need = _sim_x(rng, n)
    lam, ps = _sim_rates(age, prev, cp, need, base_rate)
    t = (rng.random(n) < ps).astype(int)
    tstar = rng.exponential(1 / (lam * hazard_ratio**t))
    admin = rng.uniform(1, followup_days, n)
    adult = (18 - age) * 365.25
    end = np.minimum.reduce([tstar, admin, adult])
    time_ = np.maximum(np.ceil(end), 1.0)
    event = (tstar <= np.minimum(admin, adult)).astype(int)
    competing = ((adult < tstar) & (adult <= admin)).astype(int)
    h = horizon_days
    followup = np.floor(np.minimum(admin, adult))
    binary = np.where(followup >= h, ((event == 1) & (time_ <= h)).astype(float), np.nan)
    n_children = max(1, int(n / 1.3))
    child = rng.integers(0, n_children, n)
    frame = pd.DataFrame({
        "la_code": "999", "child_id": [f"c{c}" for c in child], "treatment": t, "time": time_, "event": event,
        "competing": competing, "followup": followup, "outcome_binary": binary, "age_at_closure": age,
        "previous_referrals": prev.astype(float), "had_cp_plan": cp.astype(int), "primary_need": _NEEDS[need],
    })
    # truths
    trng = np.random.default_rng(seed + 10_000)
    a2, p2, c2, n2 = _sim_x(trng, truth_draws)
    lam2, ps2 = _sim_rates(a2, p2, c2, n2, base_rate)
    r1 = 1 - np.exp(-lam2 * hazard_ratio * h)
    r0 = 1 - np.exp(-lam2 * h)
    m1 = (1 - np.exp(-lam2 * hazard_ratio * h)) / (lam2 * hazard_ratio)
    m0 = (1 - np.exp(-lam2 * h)) / lam2
    truth = {
        "ate_risk_difference": float(np.mean(r1 - r0)),
        "att_risk_difference": float(np.sum(ps2 * (r1 - r0)) / np.sum(ps2)),
        "ate_rmst_difference": float(np.mean(m1 - m0)),
        "att_rmst_difference": float(np.sum(ps2 * (m1 - m0)) / np.sum(ps2)),
        "ate_risk_ratio": float(np.mean(r1) / np.mean(r0)),
        "conditional_hazard_ratio": hazard_ratio,
        "horizon_days": h,
    }
    return frame, truth
