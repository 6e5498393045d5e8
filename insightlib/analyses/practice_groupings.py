"""Groupings of need for one council: latent class analysis of the assessment factors (stats.latent_class),
the number of classes by BIC, stability by adjusted Rand index, classes named from their most distinctive
factors and set beside Hood et al. (2023); per grouping, how soon its children come back (Kaplan-Meier and
Cox, clustered by child)."""

from __future__ import annotations

from dataclasses import dataclass

import itertools

import numpy as np
import pandas as pd

from insightlib import contract
from insightlib.analyses import rereferral
from insightlib.errors import InputError
from insightlib.ingest import practice as src
from insightlib.stats import cox as cox_model
from insightlib.stats import latent_class as lc
from insightlib.stats import survival as km_model

#: Factors recorded in fewer than this share of assessments are left out of the groupings (too rare to shape one).
MIN_FACTOR_SHARE = 0.01
#: Class numbers tried.
CLASS_RANGE = range(1, 11)
#: A factor names its class where at least this share of the class has it.
NAMING_PROBABILITY = 0.3
#: Hood et al. (2023): the categories their abstract names, with the shares it gives (BJSW 53(8):3704-3724).
HOOD_2023 = {
    "Domestic abuse and violence": 19.7,
    "Complexities around parental mental health": 18.4,
    "Complex domestic abuse": None,
    "Disability": None,
    "Child mental health": None,
    "Risks outside the home": None,
    "Concerns about another person in the family or household": None,
}
_DA, _OTHER_PERSON = {"3A", "3B", "3C"}, {"1C", "2C", "3C", "4C", "5C", "6C"}
_OUTSIDE = {"10A", "11A", "12A", "13A", "14A", "22A"}
_PARENT = {"1B", "2B", "4B"}


def hood_category(top: list[tuple[str, float, float]], theta: dict[str, float]) -> str:
    """The Hood et al. category a class corresponds to, from its distinctive factors ("" if none)."""
    codes = [c for c, _, _ in top]
    if not codes:
        return ""
    first = codes[0]
    if first in _DA or (_DA & set(codes[:2])):
        return (
            "Complex domestic abuse"
            if sum(theta.get(c, 0) >= NAMING_PROBABILITY for c in _PARENT) >= 2
            else "Domestic abuse and violence"
        )
    if first == "4B":
        return "Complexities around parental mental health"
    if first in {"5A", "6A"}:
        return "Disability"
    if first in {"4A", "15A"}:
        return "Child mental health"
    if first in _OUTSIDE:
        return "Risks outside the home"
    if first in _OTHER_PERSON:
        return "Concerns about another person in the family or household"
    return ""


def class_name(top: list[tuple[str, float, float]]) -> str:
    labels = []
    for code, _, _ in top[:2]:
        label = src.FACTOR_LABELS.get(code, code)
        if label not in labels:
            labels.append(label)
    return " and ".join(labels).capitalize() if labels else "Other needs"


def factor_matrix(assessments: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """0/1 matrix of the factors (codes 1A..24A) of assessments with at least one; the columns; which rows."""
    text = assessments["factors"].fillna("").astype(str).str.upper().str.replace(" ", "", regex=False)
    known = list(contract.ASSESSMENT_FACTORS)
    # each row's codes (those of str.get_dummies(sep=";"), without its loop over every code and row)
    parts = text.str.split(";").to_numpy()
    row = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    col = pd.Index(known).get_indexer(list(itertools.chain.from_iterable(parts)))
    M = np.zeros((len(parts), len(known)), dtype=np.uint8)
    M[row[col >= 0], col[col >= 0]] = 1
    present = M.any(axis=0)
    cols = [c for c, p in zip(known, present) if p]
    X = M[:, present]
    has = X.sum(axis=1) > 0
    return X[has], cols, has


@dataclass
class Groupings:
    choice: lc.ClassChoice
    classes: pd.DataFrame  # class, name, hood_2023, hood_share, share, assessments, factors (top), entropy
    stability: dict
    columns: list
    used_factors: list
    left_out_factors: list
    n_assessments: int
    n_without_factors: int
    km: object | None = None  # survival.KMResult by grouping
    cox: object | None = None  # survival.CoxResult of the groupings
    episodes: int = 0

    def to_dict(self) -> dict:
        out = {
            "n_classes": self.choice.chosen,
            "bic": {int(r.k): float(r.bic) for r in self.choice.bic.itertuples()},
            "stability": self.stability,
            "assessments": self.n_assessments,
            "assessments_without_factors": self.n_without_factors,
            "factors_used": self.used_factors,
            "classes": {
                r["name"]: {
                    "share": r["share"],
                    "assessments": r["assessments"],
                    "hood_2023": r["hood_2023"],
                    "hood_2023_share": r["hood_share"],
                    "factors": r["factors"],
                }
                for r in self.classes.to_dict("records")
            },
        }
        if self.cox is not None:
            out["cox"] = self.cox.to_dict()
        if self.km is not None:
            out["km"] = self.km.to_dict()
        return out


def groupings(assessments: pd.DataFrame, seed: int = 0, ks=CLASS_RANGE, stability_checks: bool = True) -> Groupings:
    X, cols, has = factor_matrix(assessments)
    if len(X) < 50:
        raise InputError(f"Only {len(X)} assessments have factors recorded: too few to find groupings of need.")
    share = X.mean(axis=0)
    used = [c for c, s in zip(cols, share) if s >= MIN_FACTOR_SHARE]
    left = [c for c, s in zip(cols, share) if s < MIN_FACTOR_SHARE]
    Xu = X[:, [cols.index(c) for c in used]].astype(float)
    choice = lc.choose_classes(Xu, ks, seed=seed, columns=used)
    fit = choice.fit
    labels = fit.predict(Xu)
    top = lc.distinctive(fit, Xu, NAMING_PROBABILITY)
    rows = []
    for k in range(fit.k):
        theta = dict(zip(used, fit.theta[k]))
        hood = hood_category(top[k], theta)
        rows.append(
            {
                "class": k,
                "name": class_name(top[k]),
                "hood_2023": hood,
                "hood_share": HOOD_2023.get(hood) if hood else None,
                "share": float(np.mean(labels == k)),
                "assessments": int(np.sum(labels == k)),
                "factors": [
                    {"factor": c, "label": src.FACTOR_LABELS.get(c, c), "probability": p, "lift": lift}
                    for c, p, lift in top[k]
                ],
            }
        )
    classes = pd.DataFrame(rows)
    # two classes with one name: number them
    dup = classes["name"].duplicated(keep=False)
    classes.loc[dup, "name"] = (
        classes.loc[dup, "name"] + " (" + (classes.loc[dup].groupby("name").cumcount() + 1).astype(str) + ")"
    )
    stab = lc.stability(Xu, fit) if stability_checks and fit.k > 1 else {}
    stab["entropy"] = fit.entropy_r2(Xu)
    g = Groupings(choice, classes, stab, cols, used, left, int(len(assessments)), int((~has).sum()))
    g.labels = pd.Series(classes["name"].to_numpy()[labels], index=assessments.index[has])
    return g


def grouping_of_episodes(g: Groupings, assessments: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Each episode's grouping: that of its referral's first assessment with factors (NaN where none has)."""
    first = assessments.loc[g.labels.index].assign(grouping=g.labels.to_numpy())
    first = first.sort_values("start_date").drop_duplicates("referral_id").set_index("referral_id")["grouping"]
    return episodes["referral_id"].map(first)


def grouping_survival(g: Groupings, e: pd.DataFrame, min_group_size: int) -> list[str]:
    """How soon children come back, by grouping (``e``: the episodes with one): Kaplan-Meier and a Cox
    model clustered by child, set on ``g``; returns the notes of what could not be estimated."""
    notes = []
    if len(e) and (e["event"] == 1).sum() >= 5:
        cl = rereferral.child_key(e)
        g.km = km_model.kaplan_meier(e["duration_days"], e["event"], e["grouping"], group_by="grouping", clusters=cl)
        try:
            X, refs = rereferral.cox_design(e, ["grouping"], min_group_size=min_group_size)
            g.cox = cox_model.cox_ph(e["duration_days"], e["event"], X, clusters=cl)
            g.cox.references = refs
        except InputError as exc:
            notes.append(str(exc))
        g.episodes = int(len(e))
    return notes
