"""The programme's estimates across councils against a hidden quarter (issue 9; docs/publishing.md, identity 15).

The staggered difference-in-differences (two-stage), its event study and the two-way fixed effects contrast
are linear in every council's quarters. Fitted through a hidden quarter, the figures results.json publishes
exactly (and the event-study chart draws) are linear equations in it: at an event time with one adopter the
estimate is that council's quarter less its council and period effects, so the adversary of
tests/disclosure_attack_programme.py, knowing every quarter shown, gets it back. The report fits them on the
quarters that may be shown only (``programme_councils.shown_panel``): no published figure then depends on a
hidden quarter at all, and the adversary learns nothing.
"""

from __future__ import annotations

import disclosure_attack as attack
import disclosure_attack_programme as attack_programme
import numpy as np
import pandas as pd

from insightlib.analyses.programme import _did_sample, _event_study, evaluate_programme
from insightlib.analyses.programme_councils import _reporting_year_of_quarter, shown_panel, suppressed_rows
from insightlib.stats.did import did2s, twfe

FIRST = 2016 * 4 + 1  # 2016Q2
HORIZON, LEADS = 8, 4


def _panel() -> pd.DataFrame:
    """Four councils' referrals by quarter over four years to 31 March; two adopt (staggered), one small
    quarter in the early adopter at an event time no other council reaches."""
    rng = np.random.default_rng(5)
    rows = []
    for la, adopt in (("816", FIRST + 7), ("937", FIRST + 11), ("352", None), ("336", None)):
        values = rng.poisson(30, 16).astype(float)
        if la == "816":
            values[7 + 6] = 2.0  # event time 6: only council 816 is there
        for k, v in enumerate(values):
            rows.append({"la_code": la, "period": FIRST + k, "referrals": v,
                         "adoption_period": np.nan if adopt is None else float(adopt)})
    panel = pd.DataFrame(rows)
    panel.attrs["time_unit"] = "quarter"
    return panel


def _figures(panel: pd.DataFrame) -> np.ndarray:
    """The published figures of a fit (attack_programme.did_figures' order), without the intervals."""
    d = _did_sample(panel, "referrals", "la_code", "period", "adoption_period", HORIZON).data
    att = did2s(d, ["post"], 0.05)["post"]["estimate"]
    _, es = _event_study(d, LEADS, 0.05)
    return np.array([att, twfe(d, 0.05)["estimate"], *es.sort_values("event_time")["estimate"].to_numpy(float)])


def _attack(panel: pd.DataFrame, published: np.ndarray, fit) -> list[dict]:
    hidden = suppressed_rows(panel, "referrals").to_numpy()
    assert hidden.sum() >= 2  # the small quarter and its complement in the year
    years: dict = {}
    for i in panel.index[hidden]:
        la, q = str(panel.at[i, "la_code"]), int(panel.at[i, "period"])
        y = years.setdefault((la, _reporting_year_of_quarter(q)), {"hidden": [], "hidden_sum": 0})
        y["hidden"].append(q)
        y["hidden_sum"] += int(panel.at[i, "referrals"])
    model = attack.Model()
    attack_programme.read_did(model, fit, panel, "referrals", hidden, published, {"threshold": 5, "years": years})
    assert not model.check_truth(), model.check_truth()[:3]
    return attack.targets_small_enough(model.attack(), 5)


def test_the_estimates_across_councils_give_a_hidden_quarter_back_unless_fitted_on_the_shown_ones():
    panel = _panel()
    narrowed = _attack(panel, _figures(panel), _figures)  # fitted on every quarter, as before
    assert narrowed and narrowed[0]["low"] == narrowed[0]["high"] == 2, narrowed

    shown = shown_panel(panel, "referrals")
    mask = shown["referrals"].isna()  # the hidden quarters, decided on the truth

    def fit_shown(p):  # the same fit as a linear map of any panel: the hidden quarters left out
        return _figures(p.assign(referrals=p["referrals"].where(~mask)))

    assert np.allclose(fit_shown(panel), _figures(shown))
    assert not _attack(panel, fit_shown(panel), fit_shown)


def test_the_report_s_estimates_do_not_move_with_a_hidden_quarter():
    """The programme evaluation as the report runs it: changing a hidden quarter (to another small value)
    changes none of the published figures of the estimates across councils."""
    panel = _panel()
    hidden = suppressed_rows(panel, "referrals").to_numpy()
    kw = {"outcome": "referrals", "horizon": HORIZON, "pre_periods": LEADS, "placebo_draws": 0,
          "calibrate_neighbours": False, "published_neighbours": False}
    before = evaluate_programme(panel, **kw).effect
    other = panel.copy()
    other.loc[hidden, "referrals"] = np.where(other.loc[hidden, "referrals"] == 2, 1.0, other.loc[hidden, "referrals"] + 1)
    after = evaluate_programme(other, **kw).effect
    assert np.allclose(attack_programme.did_figures(before), attack_programme.did_figures(after), rtol=0, atol=1e-12)
    for col in ("ci_low", "ci_high", "p_value"):
        assert np.allclose(before.event_study[col], after.event_study[col], equal_nan=True)
    assert before.att == after.att and before.twfe == after.twfe
