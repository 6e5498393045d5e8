"""The risk-model audit's page attacked (issue 9; docs/publishing.md, identities 13 and 14): its rates are
counts over counts the page gives, so a small audit is built, its tables and sentences rendered as the
report shows them, and the adversary of tests/disclosure_attack_audit.py must not narrow any count of
children (flagged, re-referred, flagged and re-referred ... overall, by group and by tenth of the score)."""

from __future__ import annotations

import disclosure_attack as attack
import disclosure_attack_audit as attack_audit
import numpy as np
import pytest

from insightlib.analyses import risk_audit as AR
from insightlib.simulate.risk import FEATURES, risk_frame


def _page(res, threshold: int) -> tuple[str, list[str]]:
    """The report's tables, sentences and calibration chart as the notebook shows them."""
    from insightlib.report import risk_audit as W

    parts = [W.split_words(res), W.in_children(res), W.accuracy_table(res).to_html()]
    parts += [W.fairness_table(res, a, threshold).to_html() for a in res.groups_used]
    parts.append(W.bars_table(res).to_html())
    return "\n".join(f"<p>{p}</p>" for p in parts), attack.curve_texts(W.calibration_plot(res))


@pytest.fixture(scope="module")
def small_audit():
    f, _ = risk_frame(n=700, seed=3)
    return AR.audit(f.rename(columns={"deprivation_quintile": "deprivation"}), features=FEATURES,
                    groups=["ethnic_group", "sex", "disabled"], bootstrap_reps=10, seed=1, test_years=1)


@pytest.mark.slow
def test_the_audit_page_gives_no_small_count_away(small_audit):
    res, thr = small_audit, 5
    html, charts = _page(res, thr)
    model = attack.Model()
    attack_audit.read_audit(model, html, charts, attack_audit.audit_truth(res, thr))
    assert not model.check_truth(), model.check_truth()[:5]
    found = model.attack()
    assert len(found) > 10 and model.cells > 10
    narrowed = attack.targets_small_enough(found, thr)
    assert not narrowed, narrowed[:5]


@pytest.mark.slow
def test_a_small_count_behind_precision_hides_the_model_s_counted_measures(small_audit):
    """With a threshold above the flagged-and-re-referred count, precision, recall, the share flagged and
    the base rate are "c" on the page, missing from results.json and from the bars table."""
    from insightlib.report import risk_audit as W
    from insightlib.report import risk_audit_disclosure as RD

    res = small_audit
    kind = res.parameters["primary_model"]
    c = RD.overall_counts(res, kind)
    thr = int(min(v for v in c.values() if v > 0)) + 1
    res.parameters["disclosure_threshold"] = thr
    try:
        assert not res.counts_shown(kind, thr)
        acc = W.accuracy_table(res)
        assert (acc.loc["Precision at the threshold", W.ra.MODEL_LABELS[kind]] == "c") and acc.attrs["note"]
        assert "is not shown" in W.in_children(res)
        assert not any(b.startswith("Precision") for b in W.bars_table(res)["Bar"])
        d = res.to_dict()["models"][kind]["metrics"]
        assert all(d[k] == {"suppressed": True} for k in RD.COUNT_METRICS)
        assert np.isfinite(d["auc"]["estimate"])
        for attr in res.groups_used:  # every grouping's total is then unknown: the groups are still protected
            html, charts = _page(res, thr)
            model = attack.Model()
            attack_audit.read_audit(model, html, charts, attack_audit.audit_truth(res, thr))
            assert not attack.targets_small_enough(model.attack(), thr)
    finally:
        res.parameters["disclosure_threshold"] = 5


@pytest.mark.slow
def test_the_adversary_cannot_narrow_a_count_on_a_rendered_audit_page(tmp_path, monkeypatch):
    """The audit notebook run for synthetic councils large enough to be audited, rendered by the site's
    renderer and attacked as tests/test_disclosure_attack.py attacks the other reports (seed 0: before the
    control 27 counts narrowed, see docs/publishing.md)."""
    import test_disclosure_attack as harness

    monkeypatch.setenv("INSIGHT_ATTACK_NOTEBOOKS", "ra")
    built = harness.council_site(tmp_path, 2, 200, 0)
    assert any("ra" in pages for pages in built["pages"].values())
    cells, found, broken = harness.attack_site(built)
    assert not broken, broken[:5]
    assert cells > 20 and len(found) > 20
    assert not attack.targets_small_enough(found, built["threshold"])
