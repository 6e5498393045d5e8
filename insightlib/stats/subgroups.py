"""Who responds best? Effects of an intervention within pre-specified subgroups.

For each case the doubly robust (AIPW) pseudo-outcome

    phi = m1 - m0 + t (y - m1) / e - (1 - t) (y - m0) / (1 - e)

(e the propensity score, m1 and m0 the outcome models' predictions with and without the
intervention) has, given the covariates, the expected value of the case's own effect when either
model is right. Its mean within a subgroup is the subgroup's average effect: the DR-learner
(Kennedy 2023) with the subgroup indicators as its final model, i.e. AIPW per subgroup. Errors
come from the influence function phi - tau_g within the subgroup, summed within child; the
covariance of all of a characteristic's subgroup effects comes from the same sums, so

* each subgroup effect has a valid interval (as AIPW does overall), and
* a Wald test asks whether a characteristic's subgroup effects differ at all
  (H0: all equal; chi-squared with levels - 1 degrees of freedom);

and the tests of several characteristics are Holm-adjusted, since the more subgroups are
compared, the likelier one looks different by chance. The effects are risk differences: a
constant hazard ratio still gives different risk differences where baseline risk differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats


def pseudo_outcome(y, t, e, m1, m0) -> np.ndarray:
    """The AIPW (DR-learner) pseudo-outcome of every case."""
    y, t, e, m1, m0 = (np.asarray(v, float) for v in (y, t, e, m1, m0))
    return m1 - m0 + t * (y - m1) / e - (1 - t) * (y - m0) / (1 - e)


@dataclass
class SubgroupEffect:
    variable: str
    level: str
    estimate: float
    ci_low: float
    ci_high: float
    se: float
    cases: int
    treated: int
    control: int
    estimated: bool = True  # False: too few in one arm, or hidden
    hidden: bool = False  # enough cases, but not shown: with the group sizes it would bound a small subgroup's count

    def to_dict(self) -> dict:
        return {
            "variable": self.variable,
            "level": self.level,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "se": self.se,
            "estimated": self.estimated,  # a hidden subgroup is not estimated here either (its arms' sizes are >= min_arm)
        }


@dataclass
class DifferTest:
    """Do a characteristic's subgroup effects differ at all? (Wald, chi-squared)"""

    variable: str
    statistic: float
    df: int
    p_value: float
    p_holm: float = float("nan")

    def to_dict(self) -> dict:
        return {
            "variable": self.variable,
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "p_holm": self.p_holm,
        }


@dataclass
class SubgroupEffects:
    effects: list[SubgroupEffect]
    tests: list[DifferTest]
    level: float
    min_arm: int
    notes: list[str] = field(default_factory=list)

    @property
    def compared(self) -> int:
        return sum(1 for e in self.effects if e.estimated)

    def to_dict(self) -> dict:
        return {
            "effects": [e.to_dict() for e in self.effects],
            "differ_tests": [t.to_dict() for t in self.tests],
            "subgroups_compared": self.compared,
            "characteristics_compared": len(self.tests),
            "confidence_level": self.level,
            "method": "AIPW (DR-learner) pseudo-outcome averaged within subgroup; "
            "influence-function errors clustered by child; Wald test of equal effects; Holm across characteristics",
        }


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values."""
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def _cluster_cov(infl: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Covariance of mean-type estimators from their influence values (n x k), summed within child."""
    n = infl.shape[0]
    g = clusters.max() + 1
    sums = np.zeros((g, infl.shape[1]))
    np.add.at(sums, clusters, infl)
    adj = g / (g - 1) if g > 1 else 1.0
    return adj * sums.T @ sums / n**2


def hidden_levels(arms: dict, min_arm: int, threshold: int) -> set:
    """Subgroups with enough cases that are still not shown. A subgroup shown says both its arms have at
    least ``min_arm`` cases, and the arms of all of a characteristic's subgroups add up to the arms' sizes
    (published), so a subgroup "too few to estimate" has in each arm at most that size less ``min_arm``
    per subgroup shown. Where that leaves fewer than ``threshold`` possible values for an arm in which a
    subgroup not shown holds 1 to threshold - 1 cases, the shown subgroup with the fewest cases in that
    arm is hidden too, until it does not (docs/publishing.md, the adversary's identity 20).
    ``arms``: level -> (treated, control)."""
    shown = {lv for lv, (n1, n0) in arms.items() if n1 >= min_arm and n0 >= min_arm}
    for arm in (0, 1):
        total = sum(a[arm] for a in arms.values())
        while shown and any(1 <= arms[lv][arm] < threshold for lv in arms if lv not in shown):
            if total - min_arm * len(shown) >= threshold - 1:
                break
            shown.discard(min(sorted(shown), key=lambda lv: arms[lv][arm]))
    return {lv for lv, (n1, n0) in arms.items() if n1 >= min_arm and n0 >= min_arm} - shown


def subgroup_effects(
    y, t, e, m1, m0, clusters, groups: dict, *, level: float = 0.95, min_arm: int = 10, threshold: int = 0
) -> SubgroupEffects:
    """Each subgroup's average effect with its interval, and for each characteristic the test that its
    subgroups' effects differ. Subgroups with fewer than ``min_arm`` cases in either arm are listed
    but not estimated (and left out of the test); so are those ``hidden_levels`` hides (the disclosure
    ``threshold``), marked hidden."""
    phi = pseudo_outcome(y, t, e, m1, m0)
    t = np.asarray(t, float)
    clusters = np.unique(np.asarray(clusters), return_inverse=True)[1]
    n = len(phi)
    z = float(stats.norm.ppf(0.5 + level / 2))
    effects, tests = [], []
    for var, labels in groups.items():
        labels = np.asarray(labels).astype(str)
        levels = sorted(np.unique(labels))
        arms = {lv: (int((t[labels == lv] == 1).sum()), int((t[labels == lv] == 0).sum())) for lv in levels}
        hidden = hidden_levels(arms, min_arm, threshold)
        infl_cols, taus, idx = [], [], []
        for lv in levels:
            ing = labels == lv
            n1, n0 = arms[lv]
            if n1 < min_arm or n0 < min_arm or lv in hidden:
                effects.append(
                    SubgroupEffect(
                        var, lv, math.nan, math.nan, math.nan, math.nan, int(ing.sum()), n1, n0, False, lv in hidden
                    )
                )
                continue
            tau = float(phi[ing].mean())
            infl_cols.append(np.where(ing, (phi - tau) / ing.mean(), 0.0))
            taus.append(tau)
            idx.append(len(effects))
            effects.append(SubgroupEffect(var, lv, tau, math.nan, math.nan, math.nan, int(ing.sum()), n1, n0, True))
        if not taus:
            continue
        V = _cluster_cov(np.column_stack(infl_cols), clusters)
        for j, k in enumerate(idx):
            se = math.sqrt(max(V[j, j], 0.0))
            effects[k].se, effects[k].ci_low, effects[k].ci_high = se, taus[j] - z * se, taus[j] + z * se
        if len(taus) >= 2:
            tau = np.array(taus)
            C = np.column_stack([-np.ones(len(tau) - 1), np.eye(len(tau) - 1)])  # each level against the first
            d = C @ tau
            W = float(d @ np.linalg.pinv(C @ V @ C.T) @ d)
            df = len(tau) - 1
            tests.append(DifferTest(var, W, df, float(stats.chi2.sf(W, df))))
    if tests:
        for tst, ph in zip(tests, holm([x.p_value for x in tests])):
            tst.p_holm = float(ph)
    assert n == len(t)
    return SubgroupEffects(effects, tests, float(level), int(min_arm))
