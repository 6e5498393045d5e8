"""What the risk-model audit may publish: every rate it shows is a count over a count the page gives.

The later period's cases (published) split four ways by flagged or not and re-referred or not: flagged and
re-referred (``tp``), flagged and not (``fp``), re-referred and not flagged (``fn``), neither (``tn``).
Precision, recall, the share flagged and the base rate give those four back for the whole period; a group's
flag rate, false-positive and false-negative rates beside its cases give them back for the group. So:

* a model's precision, recall, share flagged and base rate are shown only when none of its four counts is
  from 1 to threshold - 1 (``overall_shown``);
* a grouping is a table of groups by those four counts, whose rows add up to the group's cases and whose
  columns add up to the period's (published when ``overall_shown``); it goes through
  ``disclosure.suppress_table`` and a group's rates are shown only where none of its cells is hidden
  (``hidden_groups``), its cases where that cell is shown (``group_cases``);
* the calibration chart's tenths of the score are a table of tenths by re-referred or not, each tenth's
  cases taken as known (a reader knows they are tenths of the period's cases), the period's re-referred as
  its total; a tenth is drawn only where neither cell is hidden (``hidden_bins``).

Decided from the exact counts, shown from the display (docs/publishing.md, identities 13 and 14).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib.report import disclosure

CELLS = ["tp", "fp", "fn", "tn"]
#: The measures that are a count over a count: hidden together (``overall_shown``).
COUNT_METRICS = ("precision", "recall", "flag_share", "base_rate")


def _whole(v) -> int:
    return int(round(float(v))) if np.isfinite(v) else 0


def overall_counts(audit, kind: str) -> dict[str, int]:
    """The model's four counts over the later period, from its (unrounded) point estimates."""
    a = audit.models[kind]
    m, n = a.metrics, int(a.cases)
    d, f = _whole(m["base_rate"].estimate * n), _whole(m["flag_share"].estimate * n)
    tp = _whole(m["precision"].estimate * f) if f else 0
    return {"tp": tp, "fp": f - tp, "fn": d - tp, "tn": n - d - (f - tp)}


def overall_shown(audit, kind: str, threshold: int) -> bool:
    """Whether the model's precision, recall, share flagged and base rate may be shown."""
    return not any(1 <= v < threshold for v in overall_counts(audit, kind).values())


def group_counts(audit, kind: str, attribute: str) -> pd.DataFrame:
    """Groups (and "Total") by the four counts and the cases, from the groups' exact rates."""
    rows = {}
    for g, r in audit.models[kind].groups[attribute].iterrows():
        n = _whole(r["cases"])
        d, f = _whole(r["observed"] * n), _whole(r["flag_rate"] * n)
        fn = _whole(r["false_negative_rate"] * d) if d else 0
        tp = d - fn
        rows[str(g)] = {"tp": tp, "fp": f - tp, "fn": fn, "tn": n - d - (f - tp), "cases": n}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.loc["Total"] = out.sum()
    return out.astype(int)


def _memo(audit, key: tuple, make):
    """What ``make`` gives for this audit, made once: its tables, chart, words and results.json ask for the same
    suppressions again and again (twelve of each attribute's groups were a third of the audit's report)."""
    memo = audit.__dict__.setdefault("_disclosure_memo", {})
    if key not in memo:
        memo[key] = make()
    return memo[key]


def _group_table(audit, kind: str, attribute: str, threshold: int, rounding: int | None) -> pd.DataFrame:
    """The groups' counts as shown (the same frame on every call: never written into)."""
    return _memo(
        audit,
        ("groups", kind, attribute, threshold, rounding),
        lambda: _suppressed_groups(audit, kind, attribute, threshold, rounding),
    )


def _suppressed_groups(audit, kind: str, attribute: str, threshold: int, rounding: int | None) -> pd.DataFrame:
    counts = group_counts(audit, kind, attribute)
    known = {("Total", "cases"): int(counts.loc["Total", "cases"])}
    if overall_shown(audit, kind, threshold):
        known.update({("Total", c): int(counts.loc["Total", c]) for c in CELLS})
    return disclosure.suppress_table(
        counts, CELLS + ["cases"], threshold, rounding, total_row="Total", total_column="cases", known=known
    ).table()


def hidden_groups(audit, kind: str, attribute: str, threshold: int, rounding: int | None = None) -> set[str]:
    """Groups whose rates are not shown: one of their four counts or their cases is hidden."""
    t = _group_table(audit, kind, attribute, threshold, rounding).drop(index="Total")
    return {str(g) for g, r in t.iterrows() if (r == disclosure.SUPPRESSED).any()}


def group_cases(audit, kind: str, attribute: str, threshold: int, rounding: int | None = None) -> pd.Series:
    """Each group's cases as shown (a number or "c"), and the total."""
    return _group_table(audit, kind, attribute, threshold, rounding)["cases"].copy()


def hidden_bins(audit, kind: str, threshold: int) -> list[bool]:
    """For each tenth of the score, whether it is left off the calibration chart."""
    return list(_memo(audit, ("bins", kind, threshold), lambda: _hidden_bins(audit, kind, threshold)))


def _hidden_bins(audit, kind: str, threshold: int) -> list[bool]:
    c = audit.models[kind].curve
    counts = pd.DataFrame(
        {"rereferred": c["rereferred"].astype(int), "not": (c["cases"] - c["rereferred"]).astype(int)},
        index=[f"tenth {i + 1}" for i in range(len(c))],
    )
    counts["cases"] = c["cases"].astype(int).to_numpy()
    counts.loc["Total"] = counts.sum()
    known = {(i, "cases"): int(v) for i, v in counts["cases"].items()}
    o = overall_counts(audit, kind)
    if overall_shown(audit, kind, threshold):
        known.update({("Total", "rereferred"): o["tp"] + o["fn"], ("Total", "not"): o["fp"] + o["tn"]})
    shown = disclosure.suppress_table(
        counts, ["rereferred", "not", "cases"], threshold, total_row="Total", total_column="cases", known=known
    ).table()
    return [bool((shown.loc[i, ["rereferred", "not"]] == disclosure.SUPPRESSED).any()) for i in counts.index[:-1]]
