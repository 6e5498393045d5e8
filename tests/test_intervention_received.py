"""analyses.rereferral._intervention_received, vectorised: each episode gets its one intervention, "Several" when the
ones started during it differ, "None" without any; the same as the per-episode rule it replaced."""

import numpy as np
import pandas as pd

from insightlib.analyses import rereferral


def _per_episode(episodes, interventions):
    """The rule as it was written before (a Python function per episode)."""
    out = []
    for _, e in episodes.iterrows():
        iv = interventions[
            (interventions["la_code"] == e["la_code"])
            & (interventions["child_id"] == e["child_id"])
            & (interventions["start_date"] >= e["referral_date"])
            & (interventions["start_date"] <= e["closure_date"])
        ]
        out.append(
            "None" if iv.empty else iv["intervention"].iloc[0] if iv["intervention"].nunique() == 1 else "Several"
        )
    return np.array(out, dtype=object)


def test_intervention_received_matches_the_per_episode_rule():
    rng = np.random.default_rng(2)
    n = 300
    start = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700, n), "D")
    episodes = pd.DataFrame(
        {
            "la_code": "201",
            "child_id": [f"c{i % 120}" for i in range(n)],
            "referral_id": [f"r{i}" for i in range(n)],
            "referral_date": start,
            "closure_date": start + pd.to_timedelta(rng.integers(10, 200, n), "D"),
        }
    )
    m = 400
    interventions = pd.DataFrame(
        {
            "la_code": "201",
            "child_id": [f"c{i}" for i in rng.integers(0, 120, m)],
            "intervention": rng.choice(["Family Group Conference", "Early Help", "Parenting Programme"], m),
            "start_date": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 900, m), "D"),
        }
    )
    got = rereferral._intervention_received(episodes, interventions)
    want = _per_episode(episodes, interventions)
    assert (got == want).all()
    assert {"None", "Several"} <= set(got) and len(set(got)) >= 4
