"""The practice-insight part of the synthetic truth: groupings of need and changes of worker.

The synthetic councils (``insightlib.simulate.renewal`` and ``synth_tables``, run by ``synth``) call two
hooks from here, so that the demo data carry a known answer for the practice analysis
(docs/synthetic-data.md):

* ``draw_factors`` : each assessment's factors (CIN codes, ``;``-separated) from a latent class
  model: the assessment belongs to one of ``LATENT_CLASSES`` (shares ``share``) and, given its
  class, each factor is present independently with the class's probability (``profile``;
  ``BACKGROUND`` for the factors the class does not name). This is exactly the model latent
  class analysis fits, so the classes and their number are recoverable.
* ``worker_changes`` : each assessed referral's number of changes of allocated worker, Poisson
  with a mean set by what followed the assessment (``CHANGE_MEAN``: assessment only, child in
  need plan, child protection plan), at most ``MAX_CHANGES``. Each change multiplies the hazard
  of the next referral after closure by ``WORKER_CHANGE_HR``, centred within each path
  (``log_hr_offset``) so that the other modelled hazard ratios keep their meaning.

``truth()`` is what synth writes to ``truth.json`` under ``"practice"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from insightlib import contract


@dataclass(frozen=True)
class LatentClass:
    name: str
    hood: str  # the corresponding category of Hood et al. (2023), "" where none
    share: float
    profile: dict  # factor code -> probability of being recorded, given the class


#: The true groupings of need (shares add to 1). Names follow the categories Hood et al. (2023) found.
LATENT_CLASSES = (
    LatentClass("Domestic abuse", "Domestic abuse and violence", 0.24, {"3A": 0.55, "3B": 0.9, "17A": 0.3}),
    LatentClass(
        "Parental mental health",
        "Complexities around parental mental health",
        0.20,
        {"4B": 0.9, "6B": 0.15, "16A": 0.25},
    ),
    LatentClass("Parental substance misuse", "", 0.14, {"1B": 0.7, "2B": 0.75, "16A": 0.45, "4B": 0.3}),
    LatentClass("Child's disability", "Disability", 0.10, {"5A": 0.75, "6A": 0.65, "7A": 0.08}),
    LatentClass("Child's mental health and self-harm", "Child mental health", 0.12, {"4A": 0.85, "15A": 0.6}),
    LatentClass(
        "Risks outside the home",
        "Risks outside the home",
        0.10,
        {"10A": 0.6, "11A": 0.35, "22A": 0.5, "13A": 0.3, "14A": 0.45, "2A": 0.35},
    ),
    LatentClass("Neglect and abuse of the child", "", 0.10, {"16A": 0.8, "17A": 0.45, "18B": 0.4, "19B": 0.12}),
)
#: Probability of a factor the class does not name.
BACKGROUND = 0.008
#: Changes of allocated worker: Poisson mean by what followed the assessment (path 1, 2, 3).
CHANGE_MEAN = {1: 0.3, 2: 1.0, 3: 1.6}
MAX_CHANGES = 4
#: Hazard ratio of the next referral, per change of allocated worker (within a path).
WORKER_CHANGE_HR = 1.15

FACTORS = contract.ASSESSMENT_FACTORS


def profile_matrix() -> np.ndarray:
    """(classes, factors) probabilities."""
    p = np.full((len(LATENT_CLASSES), len(FACTORS)), BACKGROUND)
    for k, c in enumerate(LATENT_CLASSES):
        for f, v in c.profile.items():
            p[k, FACTORS.index(f)] = v
    return p


def draw_factors(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    """``n`` assessments' factor strings and their true classes (an assessment with no factor drawn
    gets its class's most likely factor, as an assessment records at least one)."""
    shares = np.array([c.share for c in LATENT_CLASSES])
    cls = rng.choice(len(shares), size=n, p=shares / shares.sum())
    p = profile_matrix()
    present = rng.random((n, len(FACTORS))) < p[cls]
    empty = ~present.any(axis=1)
    present[empty, p[cls[empty]].argmax(axis=1)] = True
    codes = np.array(FACTORS, dtype=object)
    out = [";".join(codes[row]) for row in present]
    return out, cls


def _capped_mean(mu: float) -> float:
    k = np.arange(MAX_CHANGES + 1)
    pmf = stats.poisson.pmf(k, mu)
    return float((k * pmf).sum() + MAX_CHANGES * stats.poisson.sf(MAX_CHANGES, mu))


def worker_changes(u: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Changes of allocated worker from uniforms ``u`` (inverse Poisson CDF); 0 where not assessed."""
    mu = np.array([0.0] + [CHANGE_MEAN[p] for p in (1, 2, 3)])[np.asarray(path)]
    out = np.where(mu > 0, stats.poisson.ppf(np.clip(u, 0, 1 - 1e-12), np.maximum(mu, 1e-12)), 0)
    return np.minimum(out, MAX_CHANGES).astype(np.int64)


def log_hr_offset(changes: np.ndarray, path: np.ndarray) -> np.ndarray:
    """log WORKER_CHANGE_HR * (changes - their mean within the path): the term added to the log hazard."""
    centre = np.array([0.0] + [_capped_mean(CHANGE_MEAN[p]) for p in (1, 2, 3)])[np.asarray(path)]
    return np.log(WORKER_CHANGE_HR) * (np.asarray(changes) - centre)


def ethnicity_rate_ratios(ethnicity_p: dict, la_code: str) -> dict:
    """The true relative rate index of each broad ethnic group (referred children against the population).

    Synth draws each child's ethnicity from ``ethnicity_p`` whatever else happens, so among children
    referred in any period a group's share is its probability (those not known left out); against the
    council's Census 2021 shares the index is ``P(group | known) / census share``."""
    from insightlib.ingest import practice as published

    total = sum(ethnicity_p.values())
    p = {}
    for code, w in ethnicity_p.items():
        g = contract.ETHNICITY_GROUP.get(code, "Not known")
        p[g] = p.get(g, 0.0) + w / total
    known = 1 - p.pop("Not known", 0.0)
    eth = published.load("ethnicity")
    eth = eth[eth["la_code"] == la_code]
    if eth.empty:
        return {}
    shares = eth.assign(g=eth["ethnicity"].map(contract.ETHNICITY_GROUP)).groupby("g")["people"].sum()
    shares = shares / shares.sum()
    name = {"Other": "Any other ethnic group"}
    return {name.get(g, g): (p.get(g, 0.0) / known) / shares[g] for g in shares.index}


def truth(councils=None, ethnicity_p=None) -> dict:
    """What truth.json records under "practice"; with the councils (la_code, region) and synth's ethnicity
    probabilities ({"London": ..., "elsewhere": ...}) also each council's true rate ratios by ethnic group."""
    rr = {}
    if councils is not None and ethnicity_p is not None:
        for la, region in zip(councils["la_code"], councils["region"]):
            rr[la] = ethnicity_rate_ratios(ethnicity_p["London" if region == "London" else "elsewhere"], la)
    return {
        "ethnicity_relative_rate_index": {
            "meaning": "children referred per 10,000 in each broad ethnic group (ONS 0-17 times the Census 2021 "
            "share, all ages) against the council's overall rate; children whose ethnicity is not known left out",
            "councils": rr,
        },
        "latent_classes": {
            "model": "each assessment belongs to one class; given its class, each factor is recorded "
            "independently with the class's probability (background probability for factors not listed)",
            "n_classes": len(LATENT_CLASSES),
            "background_probability": BACKGROUND,
            "classes": [
                {"name": c.name, "hood_2023": c.hood, "share": c.share, "profile": c.profile} for c in LATENT_CLASSES
            ],
        },
        "worker_changes": {
            "hazard_ratio_per_change": WORKER_CHANGE_HR,
            "meaning": "hazard of the next referral after closure, per change of allocated worker during the "
            "referral, with what followed the assessment (assessment only, CIN plan, CP plan) held fixed",
            "poisson_mean_by_path": {
                "assessment only": CHANGE_MEAN[1],
                "child in need plan": CHANGE_MEAN[2],
                "child protection plan": CHANGE_MEAN[3],
            },
            "most_changes": MAX_CHANGES,
            "log_hazard_term": "log(hazard_ratio_per_change) * (changes - centre_by_path[path]); "
            "changes = allocations of the child starting during the referral, less one",
            "centre_by_path": {
                name: _capped_mean(CHANGE_MEAN[p])
                for name, p in (("assessment only", 1), ("child in need plan", 2), ("child protection plan", 3))
            },
        },
    }
