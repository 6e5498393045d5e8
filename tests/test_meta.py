"""The random-effects pooling against known answers: the BCG vaccine trials (Colditz et al. 1994, as
in R's metafor: dat.bcg, log risk ratios), statsmodels' combine_effects and a hand-worked example."""

import numpy as np
import pytest

from insightlib.errors import InputError
from insightlib.stats.meta import random_effects

# dat.bcg: tpos, tneg, cpos, cneg for 13 trials
BCG = [(4, 119, 11, 128), (6, 300, 29, 274), (3, 228, 11, 209), (62, 13536, 248, 12619), (33, 5036, 47, 5761),
       (180, 1361, 372, 1079), (8, 2537, 10, 619), (505, 87886, 499, 87892), (29, 7470, 45, 7232),
       (17, 1699, 65, 1600), (186, 50448, 141, 27197), (5, 2493, 3, 2338), (27, 16886, 29, 17825)]


def bcg():
    a, b, c, d = (np.array(x, dtype=float) for x in zip(*BCG))
    yi = np.log((a / (a + b)) / (c / (c + d)))
    vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    return yi, np.sqrt(vi)


def test_bcg_reml_matches_metafor():
    # rma(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg): REML (metafor's default)
    y, se = bcg()
    r = random_effects(y, se, method="REML")
    assert r.estimate == pytest.approx(-0.7145, abs=5e-5)
    assert r.se == pytest.approx(0.1798, abs=5e-5)
    assert r.ci_low == pytest.approx(-1.0669, abs=5e-5) and r.ci_high == pytest.approx(-0.3622, abs=5e-5)
    assert r.tau2 == pytest.approx(0.3132, abs=5e-5)
    assert r.q == pytest.approx(152.2330, abs=5e-4) and r.df == 12
    assert 100 * r.i2 == pytest.approx(92.22, abs=5e-3)


def test_bcg_dersimonian_laird_matches_metafor_and_statsmodels():
    from statsmodels.stats.meta_analysis import combine_effects

    y, se = bcg()
    r = random_effects(y, se, method="DL")
    assert r.estimate == pytest.approx(-0.7141, abs=5e-5)
    assert r.se == pytest.approx(0.1787, abs=5e-5)
    assert r.tau2 == pytest.approx(0.3088, abs=5e-5)
    assert 100 * r.i2 == pytest.approx(92.12, abs=5e-3)  # (Q - df) / Q for DL
    sm = combine_effects(y, se**2, method_re="chi2")  # statsmodels' DerSimonian-Laird
    assert r.estimate == pytest.approx(sm.mean_effect_re, rel=1e-10)
    assert r.se == pytest.approx(sm.sd_eff_w_re, rel=1e-10)
    assert r.tau2 == pytest.approx(sm.tau2, rel=1e-10)
    assert r.q == pytest.approx(sm.q, rel=1e-10)


def test_hand_worked_three_councils():
    # y = 1, 2, 6 with standard errors 1: fixed mean 3, Q = 4 + 1 + 9 = 14, C = 3 - 3/3 = 2,
    # DL tau2 = (14 - 2) / 2 = 6; weights 1/7 each so mu = 3, se = sqrt(7/3);
    # prediction interval 3 +/- t(0.975, 1) * sqrt(6 + 7/3); I2 = 6 / (6 + 1) (typical variance 1)
    r = random_effects([1.0, 2.0, 6.0], [1.0, 1.0, 1.0], method="DL")
    assert r.q == pytest.approx(14.0)
    assert r.tau2 == pytest.approx(6.0)
    assert r.estimate == pytest.approx(3.0)
    assert r.se == pytest.approx(np.sqrt(7 / 3))
    assert r.i2 == pytest.approx(6 / 7)
    half = 12.7062047361747 * np.sqrt(6 + 7 / 3)
    assert r.pred_low == pytest.approx(3 - half) and r.pred_high == pytest.approx(3 + half)
    # equal variances: REML's tau2 is the sample variance minus the within variance, 7 - 1 = 6 here too
    assert random_effects([1.0, 2.0, 6.0], [1.0, 1.0, 1.0]).tau2 == pytest.approx(6.0, abs=1e-8)


def test_no_heterogeneity_gives_the_fixed_effect_and_a_prediction_interval_only_from_three():
    r = random_effects([-10.0, -10.0], [2.0, 3.0])
    assert r.tau2 == 0 and r.i2 == 0 and r.estimate == pytest.approx(-10.0)
    assert r.pred_low is None and r.pred_high is None
    assert r.to_dict()["k"] == 2


@pytest.mark.parametrize("y, se", [([1.0], [1.0]), ([1.0, np.nan], [1.0, 1.0]), ([1.0, 2.0], [1.0, 0.0])])
def test_refuses_what_cannot_be_pooled(y, se):
    with pytest.raises(InputError):
        random_effects(y, se)
