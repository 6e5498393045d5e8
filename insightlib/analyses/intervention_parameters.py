"""The intervention-effect evaluation's parameters: the causal graph (DAG), covariates, estimand, horizon,
trimming, bootstrap and scenario shares, checked with a message naming each mistake (exit 2), before any
council runs. The analysis is in analyses/intervention.py; methods in docs/causal.md."""

from __future__ import annotations

import difflib
import functools
import re
import warnings
from typing import Any

import networkx as nx

from insightlib.analyses.subgroups import check_subgroups
from insightlib.contract import INTERVENTION_COVARIATES
from insightlib.analyses.notebook import REPORT_PARAMETERS, notebook_variables, refuse_parameters
from insightlib.errors import EvaluationFileError
from insightlib.stats.refuters import OUTCOME_NODE, TREATMENT_NODE
from insightlib.stats.scenarios import check_shares


ESTIMANDS = ("ATE", "ATT")
COVARIATES = INTERVENTION_COVARIATES  # defined once, in contract.py
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

    Raises ValueError with a plain-English reason when the text is neither. Each text is read once
    per process (pydot's parser takes a second or more; a batch reads the same graph for every
    council); the caller gets its own copy.
    """
    if not isinstance(text, str):
        return _parse_graph.__wrapped__(text)  # says what is wrong
    return _parse_graph(text).copy()


@functools.lru_cache(maxsize=64)
def _parse_graph(text: str) -> nx.DiGraph:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the graph is empty; write it in DOT (digraph { a -> b }) or GML (graph [ ... ])")
    s = text.strip()
    if re.match(r"^(strict\s+)?digraph\b", s, flags=re.I):
        import contextlib
        import io

        said = io.StringIO()  # pydot prints its parse errors; keep them out of the report, put them in the message
        try:
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(said),
            ):  # and its parser warns about pyparsing names
                warnings.simplefilter("ignore")
                import pydot

                parsed = pydot.graph_from_dot_data(s)
        except Exception as exc:  # pydot raises its own parse errors
            raise ValueError(
                f"the DOT text could not be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None
        if not parsed:
            where = [ln.strip() for ln in said.getvalue().splitlines() if "line:" in ln]
            detail = f": {where[-1]}" if where else ""
            raise ValueError(
                f"the DOT text could not be read{detail} (check braces, quotes, semicolons and '->' arrows)"
            )
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
        raise ValueError("the graph is neither DOT (starting 'digraph {') nor GML (starting 'graph [')")
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
    can act on (unknown covariate, graph without the treatment or outcome, a cycle, ...):
    one check per parameter, in the order an evaluator reads them.
    """
    if not isinstance(params, dict):
        raise EvaluationFileError(
            "'parameters' must be a mapping (intervention, horizon_days, estimand, covariates, graph)."
        )
    problems: list[str] = []
    out: dict[str, Any] = {}
    # set by an earlier check (the notebook hands its checked parameters on): the graph was derived
    derived_before = bool(params.get("graph_from_covariates", False))
    params = {k: v for k, v in params.items() if k != "graph_from_covariates"}
    for key in params:
        if key not in KNOWN_PARAMETERS:
            problems.append(f"unknown parameter '{key}'.{_suggest_or_list(key, KNOWN_PARAMETERS, 'Known')}")
    _check_intervention(params, out, problems)
    _check_horizon(params, out, problems)
    _check_estimand(params, out, problems)
    _check_covariates(params, out, problems)
    _check_graph(params, out, problems, derived_before)
    _check_trim(params, out, problems)
    _check_numbers(params, out, problems)
    out["scenario_shares"], share_problems = check_shares(params.get("scenario_shares", DEFAULTS["scenario_shares"]))
    problems += share_problems
    out["subgroups"], subgroup_problems = check_subgroups(
        params.get("subgroups"), out["covariates"], {c: COVARIATES[c][0] for c in COVARIATES}
    )
    problems += subgroup_problems
    refuse_parameters("intervention_effect", problems)
    return out


# Each check below reads one parameter from ``params``, puts its normalised value in ``out`` or says what is
# wrong in ``problems``.
def _check_intervention(params: dict, out: dict, problems: list[str]) -> None:
    name = params.get("intervention")
    if not isinstance(name, str) or not name.strip():
        problems.append(
            "'intervention' is required: the intervention's name as recorded in the interventions table, e.g. Family Group Conference."
        )
    else:
        out["intervention"] = name.strip()


def _check_horizon(params: dict, out: dict, problems: list[str]) -> None:
    horizon = params.get("horizon_days")
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, (int, float))
        or (isinstance(horizon, float) and not horizon.is_integer())
    ):
        problems.append(f"'horizon_days' must be a whole number of days greater than 0 (e.g. 365); got {horizon!r}.")
    elif horizon <= 0:
        problems.append(
            f"'horizon_days' must be positive (the follow-up window after closure, e.g. 365); got {horizon!r}."
        )
    else:
        out["horizon_days"] = int(horizon)


def _check_estimand(params: dict, out: dict, problems: list[str]) -> None:
    estimand = params.get("estimand", "ATE")
    if not isinstance(estimand, str) or estimand.strip().upper() not in ESTIMANDS:
        problems.append(
            f"'estimand' must be ATE (effect had every child received it, compared with none) or ATT "
            f"(effect among the children who received it); got {estimand!r}."
        )
    else:
        out["estimand"] = estimand.strip().upper()


def _check_covariates(params: dict, out: dict, problems: list[str]) -> None:
    """The known covariates, each once, in the order given (the unknown ones reported)."""
    covariates = params.get("covariates")
    if isinstance(covariates, str):
        covariates = [covariates]
    if not isinstance(covariates, (list, tuple)) or not covariates:
        problems.append(
            f"'covariates' must be a list of the characteristics to adjust for; known: {', '.join(COVARIATES)}."
        )
        covariates = []
    good_covariates = []
    for c in covariates:
        if not isinstance(c, str) or c not in COVARIATES:
            problems.append(f"unknown covariate {c!r}.{_suggest_or_list(c, COVARIATES, 'Known covariates')}")
        elif c not in good_covariates:
            good_covariates.append(c)
    out["covariates"] = good_covariates


def _check_graph(params: dict, out: dict, problems: list[str], derived_before: bool) -> None:
    """The causal graph: given as DOT or GML, or (left out) each covariate a common cause (as in DoWhy)."""
    covariates = out["covariates"]
    graph_text = params.get("graph")
    out["graph_from_covariates"] = graph_text is None or (
        derived_before and isinstance(graph_text, str) and graph_text.strip() == common_cause_graph(covariates)
    )
    if out["graph_from_covariates"]:
        out["graph"] = common_cause_graph(covariates)
    elif not isinstance(graph_text, str):
        problems.append(
            f"'graph' must be the causal graph as text in DOT or GML, or left out; got {type(graph_text).__name__}."
        )
    else:
        try:
            g = parse_graph(graph_text)
        except ValueError as exc:
            problems.append(f"'graph': {exc}.")
        else:
            problems += _graph_problems(g, covariates)
            out["graph"] = graph_text.strip()


def _graph_problems(g: nx.DiGraph, covariates: list[str]) -> list[str]:
    """What is wrong with a graph that parsed: a missing treatment or outcome node, a cycle, no path from the
    intervention to re-referral, a node that is not a listed covariate, a covariate not drawn."""
    problems = []
    for node, role in ((TREATMENT_NODE, "treatment"), (OUTCOME_NODE, "outcome")):
        if node not in g:
            problems.append(
                f"'graph' has no node '{node}' (the {role}).{_suggest(node, g.nodes)} Name the {role} node exactly '{node}'."
            )
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        path = " -> ".join([str(e[0]) for e in cycle] + [str(cycle[-1][1])])
        problems.append(f"'graph' is not a DAG: it has the cycle {path}; a cause cannot also be its own consequence.")
    elif TREATMENT_NODE in g and OUTCOME_NODE in g and not nx.has_path(g, TREATMENT_NODE, OUTCOME_NODE):
        problems.append(
            f"'graph' has no path from '{TREATMENT_NODE}' to '{OUTCOME_NODE}', so it assumes the intervention cannot change re-referral; add '{TREATMENT_NODE} -> {OUTCOME_NODE}'."
        )
    for node in g.nodes:
        if node in (TREATMENT_NODE, OUTCOME_NODE) or node in covariates:
            continue
        hint = " List it under covariates." if node in COVARIATES else _suggest(node, covariates or COVARIATES)
        problems.append(f"'graph' node '{node}' is not one of the listed covariates.{hint}")
    for c in covariates:
        if c not in g:
            problems.append(
                f"covariate '{c}' is not in the graph; draw its arrows (e.g. {c} -> {TREATMENT_NODE}; {c} -> {OUTCOME_NODE}) or remove it."
            )
    return problems


def _check_trim(params: dict, out: dict, problems: list[str]) -> None:
    trim = params.get("trim", DEFAULTS["trim"])
    if isinstance(trim, str) and trim.strip().lower() in ("crump", "none"):
        out["trim"] = trim.strip().lower()
    elif (
        isinstance(trim, (list, tuple))
        and len(trim) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in trim)
        and 0 <= trim[0] < 0.5 < trim[1] <= 1
    ):
        out["trim"] = [float(trim[0]), float(trim[1])]
    else:
        problems.append(
            f"'trim' must be 'crump', 'none' or [low, high] propensity limits such as [0.05, 0.95]; got {trim!r}."
        )


def _check_numbers(params: dict, out: dict, problems: list[str]) -> None:
    """The bootstrap and refuter sizes, the seed and the confidence level."""
    for key, lo, hi in (
        ("bootstrap_reps", 0, 5000),
        ("refutation_simulations", 0, 100),
        ("refutation_sample", 200, 10**7),
        ("seed", 0, 2**32 - 1),
    ):
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
        raise EvaluationFileError(
            "'parameters' must be a mapping (intervention, horizon_days, estimand, covariates, graph)."
        )
    given = {k: v for k, v in parameters.items() if k not in REPORT_PARAMETERS}
    return check_parameters({**NOTEBOOK_DEFAULTS, **given})


def notebook_parameters(namespace: dict) -> dict:
    """The analysis parameters among a notebook's variables (call with ``globals()`` straight after the
    parameters cell), checked (check_parameters): a misspelt one is reported instead of ignored."""
    return check_parameters(notebook_variables(namespace, REPORT_PARAMETERS))
