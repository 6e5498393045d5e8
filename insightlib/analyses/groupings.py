"""Re-referral by a grouping of the analyst's own (a team, a locality, a pilot's cases), in one call.

The re-referral notebook offers the groupings leaders ask for most (``group_by``); an analyst who
wants another one gives it here as a function of the episodes, and gets back a table that is
already through disclosure control, ready to share (docs/analyst-guide.md). The estimates are the
suite's own (episodes from ``build_episodes``, Kaplan-Meier from ``stats.survival``): nothing
is computed a second way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..contract import DISCLOSURE_THRESHOLD, MIN_AT_RISK
from ..errors import InputError
from ..ingest.episodes import at_risk, build_episodes
from ..report.disclosure import SUPPRESSED, suppress_table
from ..report.labels import GROUPINGS, OTHER
from ..stats.survival import KMResult, kaplan_meier
from .rereferral import add_groupings, child_key, fold_small_groups

#: What a grouping without a value is called (an episode with no allocation, say).
NOT_RECORDED = "Not recorded"

Grouping = Callable[[pd.DataFrame, dict], "np.ndarray | pd.Series | list"]


def team_at_closure(episodes: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> np.ndarray:
    """The team of the worker allocated to the child on the day the case closed.

    Of the child's allocations that had started by the closure date and had not ended before it,
    the one that started last; "Not recorded" where there is none (or no allocations table).
    """
    out = np.full(len(episodes), NOT_RECORDED, dtype=object)
    alloc = tables.get("allocations")
    if alloc is None or alloc.empty or "team" not in alloc:
        return out
    a = alloc.loc[alloc["team"].notna(), ["la_code", "child_id", "start_date", "end_date", "team"]].copy()
    ep = episodes[["la_code", "child_id", "closure_date"]].reset_index(drop=True).assign(_row=lambda d: d.index)
    pairs = ep.merge(a, on=["la_code", "child_id"], how="inner")
    closing = pd.to_datetime(pairs["closure_date"])
    covers = (pd.to_datetime(pairs["start_date"]) <= closing) & (
        pairs["end_date"].isna() | (pd.to_datetime(pairs["end_date"]) >= closing)
    )
    latest = pairs.loc[covers].sort_values(["_row", "start_date"]).groupby("_row")["team"].last()
    out[latest.index.to_numpy()] = latest.astype(str).to_numpy()
    return out


@dataclass
class GroupedRereferral:
    """Re-referral within a horizon by the analyst's grouping: true counts (private) and the table to share."""

    grouping: str
    horizon_days: int
    counts: pd.DataFrame  # true counts per group: never shared as they are
    km: KMResult
    disclosure_threshold: int
    rounding: int | None
    folded: list[str]

    @property
    def columns(self) -> tuple[str, str, str]:
        h = self.horizon_days
        return ("closed cases", f"re-referred within {h} days", f"not re-referred within {h} days")

    def safe_table(self) -> pd.DataFrame:
        """The table to share: counts under disclosure control (small counts and what would give them
        back shown as "c"), with the share re-referred (Kaplan-Meier, 95% interval) only where its
        row's counts are all shown and at least ``MIN_AT_RISK`` cases were still followed."""
        closed, back, not_back = self.columns
        rows = self.counts.set_index("group")[["closed", "rereferred", "not_rereferred"]]
        rows.columns = [closed, back, not_back]
        rows.loc["Total"] = rows.sum()
        rows.index.name = self.grouping
        safe = suppress_table(
            rows,
            [closed, back, not_back],
            self.disclosure_threshold,
            self.rounding,
            total_row="Total",
            total_column=closed,
        )
        table = safe.display.copy()
        share = []
        for group in table.index:
            hidden = bool(safe.mask.loc[group].any())
            at = (
                self.km.at(group if group != "Total" else "All", self.horizon_days)
                if (group in self.km.curves or group == "Total")
                else None
            )
            if hidden or at is None or at["at_risk"] < MIN_AT_RISK:
                share.append(SUPPRESSED)
            else:
                share.append(f"{1 - at['survival']:.0%} ({1 - at['ci_high']:.0%} to {1 - at['ci_low']:.0%})")
        table[f"share re-referred within {self.horizon_days} days (95% interval)"] = share
        table.attrs["note"] = safe.footnote() + (
            f" {OTHER}: {', '.join(self.folded)} (groups too small to show alone)." if self.folded else ""
        )
        return table

    def to_dict(self) -> dict:
        """The shareable figures (from the safe table), for results.json."""
        return {
            "grouping": self.grouping,
            "horizon_days": self.horizon_days,
            "table": self.safe_table().reset_index().astype(str).to_dict(orient="records"),
        }


def rereferral_by(
    tables: dict[str, pd.DataFrame],
    grouping: Grouping | str,
    name: str | None = None,
    *,
    horizon_days: int = 365,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
    rounding: int | None = None,
    min_group_size: int = 20,
) -> GroupedRereferral:
    """Re-referral within ``horizon_days`` of a case closing, by ``grouping``.

    ``grouping`` is a function ``(episodes, tables) -> one label per episode`` (e.g.
    ``team_at_closure``), or the name of a grouping the report already offers (``GROUPINGS``).
    Groups smaller than ``min_group_size`` (or the disclosure threshold) are shown together as "Other".
    """
    episodes = add_groupings(build_episodes(tables), tables.get("interventions"))
    episodes = at_risk(episodes, renumber=True)
    if episodes.empty:
        raise InputError("No closed case has any follow-up before the extract date, so there is nothing to analyse.")
    if isinstance(grouping, str):
        if grouping not in GROUPINGS:
            raise InputError(f"grouping must be a function or one of {', '.join(GROUPINGS)}; got {grouping!r}.")
        name, labels = name or grouping, episodes[grouping].to_numpy(dtype=object)
    else:
        labels = np.asarray(grouping(episodes, tables), dtype=object)
        name = name or getattr(grouping, "__name__", "group")
    if len(labels) != len(episodes):
        raise InputError(f"the grouping gave {len(labels)} labels for {len(episodes)} episodes; give one per episode.")
    labels = np.where(pd.isna(labels), NOT_RECORDED, labels).astype(str)
    groups = fold_small_groups(
        labels, max(min_group_size, disclosure_threshold), min_other=disclosure_threshold
    ).to_numpy()
    folded = sorted(set(labels[groups == OTHER]) - {OTHER})
    t, e = episodes["duration_days"].to_numpy(), episodes["event"].to_numpy()
    back = (e == 1) & (t <= horizon_days)
    counts = (
        pd.DataFrame({"group": groups, "back": back})
        .groupby("group", sort=True)["back"]
        .agg(closed="size", rereferred="sum")
        .reset_index()
    )
    counts["not_rereferred"] = counts["closed"] - counts["rereferred"]
    child = child_key(episodes)
    km = kaplan_meier(t, e, groups, (horizon_days,), clusters=child)
    overall = kaplan_meier(t, e, None, (horizon_days,), clusters=child)
    km.curves["All"], km.durations["All"] = overall.curves["All"], overall.durations["All"]
    return GroupedRereferral(
        grouping=name,
        horizon_days=int(horizon_days),
        counts=counts,
        km=km,
        disclosure_threshold=disclosure_threshold,
        rounding=rounding,
        folded=folded,
    )
