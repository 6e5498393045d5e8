"""The intervention report's later sections under the adversary (issue 9; docs/publishing.md, identities 20-25):
each published figure the adversary reads there, a small case where it gives a count away before the fix, and
the report's rule that stops it. Fast: hand-made pages and results, no notebook run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

import disclosure_attack as attack
import disclosure_attack_intervention as attack_iv
from insightlib.stats import scenarios as S
from insightlib.stats import subgroups as SG
from insightlib.report import scenarios as R
from insightlib.report import subgroups as subgroup_report


def _counts_page(treated: int, control: int, followed=("c", "c", 0)) -> str:
    """An intervention page's counts table: followed for the whole period shown as given (Total last)."""
    rows = "".join(f"<tr><th>{lab}</th><td>{a}</td><td>{b}</td><td>c</td></tr>" for lab, a, b in (
        ("Received the intervention", "c", followed[0]), ("Did not", "c", followed[1]),
        ("Total", treated + control, followed[2])))
    return ("<table><thead><tr><th>Group</th><th>Closed cases analysed</th><th>Followed for the whole 365 days</th>"
            f"<th>Re-referred within 365 days</th></tr></thead><tbody>{rows}</tbody></table>")


def _subgroup_page(rows: list[tuple[str, str, str]]) -> str:
    body = "".join(f"<tr><th>{c}</th><th>{lv}</th><td>{cell}</td><td></td></tr>" for c, lv, cell in rows)
    return ("<table><thead><tr><th></th><th></th><th>Effect on re-referral within 365 days</th><th>95% interval</th>"
            f"</tr></thead><tbody>{body}</tbody></table>")


def test_a_subgroup_shown_beside_one_too_few_bounds_its_count_and_is_hidden():
    """Identity 20: 12 treated followed, 10 without a disability (estimated, so at least 10) and 2 with one (too few):
    the adversary narrows the 2 to 0..2. stats.subgroups.hidden_levels hides the estimated one, and then it cannot."""
    arms = {"0": (10, 21), "1": (2, 1)}
    assert SG.hidden_levels(arms, 10, 5) == {"0"}
    assert SG.hidden_levels(arms, 10, 0) == set()  # no threshold: nothing hidden (as before)
    assert SG.hidden_levels({"0": (16, 21), "1": (2, 1)}, 10, 5) == set()  # 0..6: enough values left
    truth = {"subgroups": {("Disability", "No"): arms["0"], ("Disability", "Yes"): arms["1"]}, "threshold": 5,
             "min_arm": 10}
    values = {}
    for label, no_cell in (("before", "-4.1 points"), ("after", "c")):
        model = attack.Model()
        attack.read_intervention(model, _counts_page(20, 30, (12, 22, 34)), {"counts": {
            "analysed_treated": 20, "analysed_control": 30, "binary_treated": 12, "binary_control": 22,
            "rereferred_treated": 3, "rereferred_control": 5}}, [])
        attack_iv.read_subgroups(model, _subgroup_page([("Disability", "No", no_cell),
                                                        ("Disability", "Yes", "too few to estimate")]), truth)
        assert not model.check_truth(), model.check_truth()
        values[label] = {r["target"]: r["values"] for r in model.attack() if "sub[" in r["target"]}
    assert values["before"]["iv:sub[Disability|Yes|treated]"] == 3  # 0, 1 or 2
    assert values["after"]["iv:sub[Disability|Yes|treated]"] >= 5
    # the report shows the hidden one as c with a note, and results.json has no estimate for it
    effects = SG.SubgroupEffects([SG.SubgroupEffect("disabled", "0", np.nan, np.nan, np.nan, np.nan, 31, 10, 21,
                                                    False, True),
                                  SG.SubgroupEffect("disabled", "1", np.nan, np.nan, np.nan, np.nan, 3, 2, 1, False)],
                                 [], 0.95, 10)
    table = subgroup_report.table(effects, 365)
    assert list(table.iloc[:, 0]) == ["c", "too few to estimate"] and "note" in table.attrs
    assert effects.to_dict()["effects"][0]["estimate"] != effects.to_dict()["effects"][0]["estimate"]  # NaN


def test_the_scenarios_volume_gives_the_cases_before_its_windows_and_is_hidden():
    """Identity 21: 3 years of 20, 21 and 19 analysed closures beside 62 analysed: "about 20 a year" and "about 6
    cases a year more" for 10% more pin the 60 in the windows, so the 2 analysed before them. The report hides the
    volume (and every scenario with it) when that rest is from 1 to threshold - 1."""
    vol = S.Volume(20.0, 40.0, ["a", "b", "c"], [20, 21, 19], "mean")
    res = S.scenarios(-0.08, 0.02, vol, 31 / 62, [0.1, "none"], estimand="ATE")
    counts = {"analysed": 62, "analysed_treated": 31}
    assert R.shown(res, counts, 5) == {"volume": False, "share": True}
    assert "Not shown" in R.headline(res, counts, 5)
    page = ("<p>" + R.headline(res, {**counts, "analysed": 60}, 5).replace("\n", "</p><p>") + "</p>")
    assert "About 20 cases" in page
    model = attack.Model()
    model.fix(model.var("iv:analysed_total", truth=62), 62)
    model.fix(model.var("iv:analysed_treated", truth=31), 31)
    model.var("iv:binary_treated")
    attack_iv.read_scenarios(model, page, {"volume": vol.counts, "analysed": 62, "threshold": 5})
    assert not model.check_truth(), model.check_truth()
    (hit,) = [r for r in model.attack() if r["target"] == "iv:scenario_rest"]
    assert hit["values"] < 5  # before: narrowed (the page a council of 62 would have published)
    assert R.shown(res, {**counts, "analysed": 60}, 5)["volume"]  # nothing before the windows: shown


def test_the_effective_sample_size_and_the_checks_sample_follow_the_counts_table():
    """Identities 22 and 24: "3 cases with the intervention and 27 without" beside c, c, 30 gives 3 exactly (Kish's
    ESS is at most the group's size); "a random sample of 20" with 300 asked for is every case followed."""
    model = attack.Model()
    attack.read_intervention(model, _counts_page(3, 27, ("c", "c", 20)), {"counts": {
        "analysed_treated": 3, "analysed_control": 27, "binary_treated": 2, "binary_control": 18,
        "rereferred_treated": 0, "rereferred_control": 1}}, [])
    attack_iv.read_ess(model, "Effective sample size after weighting: 3 cases with the intervention and 27 without.",
                       {})
    ranges = {r["target"]: (r["low"], r["high"]) for r in model.attack()}
    assert ranges["iv:analysed_treated"] == (3, 3)
    from insightlib.report.intervention import InterventionEffect

    effect = object.__new__(InterventionEffect)
    effect.counts = {"episodes": 30, "analysed": 30, "analysed_treated": 3, "analysed_control": 27,
                     "binary_treated": 2, "binary_control": 18, "rereferred_treated": 0, "rereferred_control": 1}
    effect.parameters, effect.ess = {"disclosure_threshold": 5, "horizon_days": 365, "refutation_sample": 300}, {
        "treated": 3.0, "control": 27.0}
    words = effect.ess_words()
    assert "3 cases" not in words and "27 cases" not in words and "not shown" in words
    assert effect._ess_published() == {"treated": None, "control": None}
    effect.refutations = {"placebo_treatment": {"rows": 20, "simulations": 1, "passed": True}}
    assert "sample of 20" not in effect.refutation_words()
    model = attack.Model()
    model.var("iv:binary_total", truth=20)
    attack_iv.read_refutations(model, "on a random sample of 20 closed cases", {"refutation_sample": 300})
    assert model._bounds_of({"iv:binary_total": 1}, {}) == (20, 20)


def test_a_numeric_difference_before_weighting_is_hidden_beside_a_small_group():
    """Item 4: a number's difference before weighting (age, previous referrals) is means over the groups, so it is
    not shown beside a group of 1 to threshold - 1 (whose size it would take part in); a yes/no keeps its rule."""
    import pandas as pd

    from insightlib.report.intervention import InterventionEffect

    effect = object.__new__(InterventionEffect)
    effect.parameters = {"disclosure_threshold": 5}
    effect.balance = pd.DataFrame({"covariate": ["previous_referrals", "previous_referrals"], "smd_before": [0.2, 0.3],
                                   "smd_after": [0.0, 0.0], "treated_with": [np.nan, np.nan],
                                   "control_with": [np.nan, np.nan], "treated_n": [3, 9], "control_n": [20, 20]})
    assert list(effect.before_shown()) == [False, True]


def test_two_evaluations_of_the_same_children_show_the_same_totals():
    """Identity 25: with nothing set aside, two evaluations of the same children count the same cases followed and
    re-referred; each counts table pins those totals (never a complement), so neither gives the other's back."""
    from insightlib.report.intervention import InterventionEffect

    tables = []
    for treated in ((6, 5, 3), (12, 10, 1)):
        effect = object.__new__(InterventionEffect)
        effect.counts = {"episodes": 40, "analysed": 40, "analysed_treated": treated[0], "analysed_control": 40 - treated[0],
                         "binary_treated": treated[1], "binary_control": 30 - treated[1],
                         "rereferred_treated": treated[2], "rereferred_control": 9 - treated[2]}
        effect.parameters = {"disclosure_threshold": 5, "horizon_days": 365}
        tables.append(effect.safe_counts_table(5))
    for t in tables:
        assert list(t.loc["Total"]) == ["40", "30", "9"], t
