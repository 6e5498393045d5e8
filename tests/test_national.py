"""National summary: control limits, symbols kept as symbols, outliers flagged, reconciliation."""

from __future__ import annotations

import json
import math
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightlib import reference
from insightlib.analyses import national
from insightlib.report import national as national_page, national_charts
from insightlib.stats import funnel as funnels
from insightlib.errors import InputError


def binom_cdf(r: int, n: int, p: Fraction) -> Fraction:
    return sum((math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(r + 1)), Fraction(0))


def hand_exact_limit(n: int, p0: Fraction, q: Fraction) -> float:
    """Spiegelhalter's interpolated binomial quantile, by hand with exact fractions."""
    r = next(r for r in range(n + 1) if binom_cdf(r, n, p0) >= q)
    f_r, f_r1 = binom_cdf(r, n, p0), (binom_cdf(r - 1, n, p0) if r > 0 else Fraction(0))
    alpha = (f_r - q) / (f_r - f_r1)
    return float((r - alpha) / n)


def test_exact_limits_match_hand_computation():
    # n = 10, p = 1/2: F(1) = 11/1024, F(2) = 56/1024, so the lower 95% limit is
    # (2 - (56/1024 - 0.025) / (45/1024)) / 10 = 0.132444...
    lim = funnels.control_limits([10], 0.5).iloc[0]
    assert lim["lower_95"] == pytest.approx(0.1324444, abs=1e-6)
    assert lim["upper_95"] == pytest.approx(0.7675556, abs=1e-6)
    for n, p0 in [(10, Fraction(1, 2)), (37, Fraction(22, 100)), (200, Fraction(3, 10))]:
        lim = funnels.control_limits([n], float(p0)).iloc[0]
        assert lim["lower_95"] == pytest.approx(hand_exact_limit(n, p0, Fraction(25, 1000)), abs=1e-9)
        assert lim["upper_95"] == pytest.approx(hand_exact_limit(n, p0, Fraction(975, 1000)), abs=1e-9)
        assert lim["lower_99_8"] == pytest.approx(hand_exact_limit(n, p0, Fraction(1, 1000)), abs=1e-9)
        assert lim["upper_99_8"] == pytest.approx(hand_exact_limit(n, p0, Fraction(999, 1000)), abs=1e-9)


def test_normal_limits_match_hand_computation():
    # 0.22 +/- 1.959964 * sqrt(0.22 * 0.78 / 100) = 0.22 +/- 0.0811912
    lim = funnels.control_limits([100], 0.22, method="normal").iloc[0]
    assert lim["lower_95"] == pytest.approx(0.1388088, abs=1e-6)
    assert lim["upper_95"] == pytest.approx(0.3011912, abs=1e-6)
    # 3.090232 * 0.0414246 = 0.1280116
    assert lim["upper_99_8"] == pytest.approx(0.3480116, abs=1e-6)


def test_exact_limits_approach_normal_for_large_n():
    ex = funnels.control_limits([200_000], 0.22).iloc[0]
    no = funnels.control_limits([200_000], 0.22, method="normal").iloc[0]
    for col in ("lower_95", "upper_95", "lower_99_8", "upper_99_8"):
        assert ex[col] == pytest.approx(no[col], abs=2e-5)


def test_bad_target_or_method_is_input_error():
    with pytest.raises(InputError):
        funnels.control_limits([10], 1.2)
    with pytest.raises(InputError):
        funnels.control_limits([10], 0.2, method="poisson")


def planted(seed=3, outlier_rate=0.32):
    rng = np.random.default_rng(seed)
    n = rng.integers(800, 4000, size=40)
    events = rng.binomial(n, 0.22)
    df = pd.DataFrame({"la_code": [f"9{i:02d}" for i in range(40)], "la_name": [f"Council {i}" for i in range(40)],
                       "referrals": n, "rereferrals": events})
    df.loc[7, "rereferrals"] = int(df.loc[7, "referrals"] * outlier_rate)
    return df


def test_funnel_flags_a_planted_outlier():
    res = funnels.funnel(planted(), target=0.22)
    assert res.band_of("907") == "above 99.8% limit"
    assert res.outliers(0.998) == ["907"]
    assert (res.points["band"] == "within limits").mean() > 0.8
    assert "907" in res.table()["la_code"].head(1).tolist()
    low = planted(outlier_rate=0.12)
    assert funnels.funnel(low, target=0.22).band_of("907") == "below 99.8% limit"


def test_overdispersion_factor_is_one_for_binomial_and_large_for_overdispersed():
    rng = np.random.default_rng(11)
    n = rng.integers(1000, 5000, size=150).astype(float)
    binomial = rng.binomial(n.astype(int), 0.22).astype(float)
    assert funnels.overdispersion_factor(binomial, n, 0.22) == 1.0
    p = rng.beta(22, 78, size=150)  # council rates that genuinely differ
    over = rng.binomial(n.astype(int), p).astype(float)
    phi = funnels.overdispersion_factor(over, n, 0.22)
    assert phi > 5
    wide = funnels.funnel(pd.DataFrame({"la_code": [str(i) for i in range(150)], "referrals": n, "rereferrals": over}),
                           target=0.22, overdispersion=True)
    narrow = funnels.funnel(pd.DataFrame({"la_code": [str(i) for i in range(150)], "referrals": n, "rereferrals": over}),
                             target=0.22)
    assert wide.phi == pytest.approx(phi)
    assert len(wide.outliers()) < len(narrow.outliers())


def test_published_pooled_rate_matches_england_2025():
    pub = reference.published_rereferral_rates(2025)
    assert len(pub) == 153
    pooled = pub["rereferrals"].sum() / pub["referrals"].sum()
    assert pooled == pytest.approx(0.226, abs=0.0005)  # DfE: 22.6% of 632,830 referrals
    assert reference.england_rereferral_rate(2025) == 0.226


def test_dfe_symbols_are_never_zero(tmp_path):
    pub = reference.published_rereferral_rates(2024)
    city = pub.loc[pub["la_code"] == "201"].iloc[0]  # City of London 2024: re-referrals "c"
    assert city["rereferrals_symbol"] == "c" and np.isnan(city["rereferrals"]) and np.isnan(city["rate"])
    assert national_charts.display_value(city["rate"], city["rate_symbol"], "rate") == "c"
    # A true published zero stays a zero (City of London 2013: 0 of 19).
    z = reference.published_rereferral_rates(2013).set_index("la_code").loc["201"]
    assert national_charts.display_value(z["rate"], z["rate_symbol"], "rate") == "0.0%"
    res = national.published_funnel(2024)
    assert "201" not in set(res.points["la_code"]) and "201" in set(res.excluded["la_code"])
    # In the page table, City of London's row shows c, not 0.
    summary_table = national.build_national_summary(tmp_path, year=2024).tables[-1][1]
    row = summary_table.split("City of London")[1].split("</tr>")[0]
    assert ">c<" in row and ">0<" not in row and "0.0%" not in row
    assert national_charts.display_value(float("nan"), "", "count") == "x"


def write_result(root, evaluation, la_code, referrals, rereferrals, year=None, created="2026-01-01T00:00:00"):
    folder = root / evaluation / la_code
    folder.mkdir(parents=True)
    measure = {"rate": rereferrals / referrals, "referrals": referrals, "rereferrals": rereferrals}
    if year:
        measure["year"] = year
    (folder / "results.json").write_text(json.dumps({"la_code": la_code, "created": created, "dfe_measure": measure}))


def test_collect_and_reconcile(tmp_path):
    write_result(tmp_path, "rereferral", "202", 2000, 380, year=2025)
    write_result(tmp_path, "rereferral", "201", 50, 3)
    write_result(tmp_path, "older", "202", 10, 1, created="2025-01-01T00:00:00")  # older: dropped
    (tmp_path / "_site").mkdir()
    got = national.collect_dfe_measures(tmp_path)
    assert got["la_code"].tolist() == ["201", "202"]
    assert got.set_index("la_code").loc["202", "referrals"] == 2000
    rec = national.reconcile("202", {"referrals": 2000, "rereferrals": 380, "year": 2025})
    assert rec.published["referrals"] == 2086 and rec.published["rereferrals"] == 381
    assert rec.difference_points == pytest.approx(100 * (0.19 - 0.183), abs=1e-9)
    assert 0 < rec.p_value < 1
    small = national.reconcile("201", {"referrals": 50, "rereferrals": 3}, year=2024)
    t = national_page.reconciliation_table(small).set_index("source")
    assert t.iloc[0]["rereferrals"] == "c" and t.iloc[0]["rate"] == "c"  # our own small count suppressed
    assert t.iloc[1]["rate"] == "c" and small.difference_points is None  # DfE's c kept as c
    assert "published rate for the year to 31 March 2024 is suppressed" in national_page.reconciliation_sentence(small)
    # our own figure hidden, DfE's published: said so, never "not available to compare (22.3%)"
    hidden = national.reconcile("202", {"referrals": 50, "rereferrals": 3, "year": 2022})
    assert hidden.difference_points is None and hidden.published["rate"] is not None
    assert "hidden because it rests on small numbers" in national_page.reconciliation_sentence(hidden) and "not available" not in national_page.reconciliation_sentence(hidden)


def test_verdicts_and_funnel_belong_to_the_rows_own_year(tmp_path):
    """A 2022 extract is placed in 2022's funnel, not 2025's; the computed funnel names a council of another year."""
    write_result(tmp_path, "rereferral", "202", 2000, 380, year=2025)
    write_result(tmp_path, "rereferral", "203", 3600, 470, year=2025)
    write_result(tmp_path, "rereferral", "206", 2500, 600, year=2022)
    s = national.build_national_summary(tmp_path)
    rec = next(html for heading, html in s.tables if heading == "Computed against published")
    row = rec.split("Islington")[1].split("</tr>")[0]
    assert ">2022<" in row and f">{national.published_funnel(2022).band_of('206')}<" in row
    assert "Against England, same year (published)" in rec
    assert s.computed_funnel.year == 2025 and s.computed_funnel.target == reference.england_rereferral_rate(2025)
    assert "206" not in set(s.computed_funnel.points["la_code"])
    assert any("Islington has a figure for another year" in p for p in s.paragraphs)
    only_2022 = tmp_path / "only"
    write_result(only_2022, "rereferral", "206", 2500, 600, year=2022)
    s2 = national.build_national_summary(only_2022)
    assert s2.computed_funnel.year == 2022 and s2.computed_funnel.target == pytest.approx(reference.england_rereferral_rate(2022))


def test_build_national_summary(tmp_path):
    write_result(tmp_path, "rereferral", "202", 2000, 380, year=2025)
    write_result(tmp_path, "rereferral", "203", 3600, 470, year=2025)
    s = national.build_national_summary(tmp_path)
    assert s.year == 2025 and s.computed_funnel is not None
    assert [f.name for f in s.figures][:2] == ["published_funnel", "computed_funnel"]
    assert all(f.alt and f.png.startswith(b"\x89PNG") for f in s.figures)
    assert any(f.name == "trend_202" for f in s.figures)
    page = s.html_fragment()
    assert page.count("<img") == len(s.figures) and 'alt="Funnel plot' in page
    assert 'class="sortable"' in page and "<script>" in page
    assert "Camden" in page and "Greenwich" in page
    json.dumps(s.to_dict())  # serialisable


def test_sortable_table_escapes_and_sorts_by_number():
    df = pd.DataFrame({"Council": ["<b>A</b>", "B"], "Rate": ["12.0%", "c"]})
    out = national_page.sortable_table_html(df, caption="cap", sort_keys={"Rate": pd.Series([0.12, np.nan])})
    assert "&lt;b&gt;A&lt;/b&gt;" in out and "<b>A</b>" not in out
    assert 'data-sort="0.12"' in out and 'data-sort=""' in out


@pytest.mark.needs_chromium
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_sortable_table_sorts_in_a_browser(tmp_path):
    """Click the "Rate" heading twice in headless Chromium: numbers sort, DfE symbols stay last."""
    df = pd.DataFrame({"Council": ["A", "B", "C", "D"], "Rate": ["20.0%", "c", "5.0%", "12.5%"]})
    table = national_page.sortable_table_html(df, caption="cap", sort_keys={"Rate": pd.Series([0.2, np.nan, 0.05, 0.125])})
    clicks = """<script>
      var b = document.querySelectorAll("button.sort")[1];
      var order = function () { return Array.prototype.map.call(document.querySelectorAll("tbody tr"),
        function (r) { return r.cells[0].textContent; }).join(""); };
      b.click(); var up = order(); b.click(); var down = order();
      document.getElementById("out").textContent = up + "|" + down;
    </script>"""
    page = tmp_path / "t.html"
    page.write_text(f"<!DOCTYPE html><html><body>{table}<pre id=\"out\"></pre>{clicks}</body></html>")
    proc = subprocess.run(
        ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    out = re.search(r'<pre id="out">([^<]*)</pre>', proc.stdout)
    assert out, proc.stderr[-500:]
    assert out.group(1) == "CDAB|ADCB"  # ascending 5, 12.5, 20 then c; descending 20, 12.5, 5 then c
    assert 'aria-sort="descending"' in proc.stdout


def test_a_council_that_rounds_is_shown_rounded_on_the_national_page(tmp_path):
    """Issue 9: with ``rounding: 5`` the national page shows the rounded counts and their rate."""
    folder = tmp_path / "rereferral" / "202"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "la_code": "202", "created": "2026-01-01T00:00:00",
        "parameters": {"disclosure_threshold": 5, "rounding": 5},
        "dfe_measure": {"rate": 383 / 2002, "referrals": 2002, "rereferrals": 383, "year": 2025}}))
    got = national.collect_dfe_measures(tmp_path)
    assert got.loc[0, "rounding"] == 5
    rec = national.reconcile("202", {"referrals": 2002, "rereferrals": 383, "year": 2025}, rounding=5)
    assert rec.computed["display"]["referrals"] == "2,000" and rec.computed["display"]["rereferrals"] == "385"
    assert rec.computed["display"]["rate"] == "19.2%" and rec.computed["rate"] == pytest.approx(385 / 2000)
    summary = national.build_national_summary(tmp_path)
    rec_table = next(h for heading, h in summary.tables if heading == "Computed against published")
    row = rec_table.split(">Camden<")[1].split("</tr>")[0]
    said = " ".join(p for p in summary.paragraphs if "Camden" in p)
    for shown in (row, said):
        assert "2,002" not in shown and "19.1%" not in shown  # 383/2002 would be 19.1%
    assert "2,000" in row and "19.2%" in row and "19.2%" in said
    pts = national.build_national_summary(tmp_path).computed_funnel.points.set_index("la_code")
    assert (pts.loc["202", "n"], pts.loc["202", "events"]) == (2000, 385)


def test_funnel_labels_never_overprint_at_either_width():
    """Two councils at almost the same place (Haringey and Manchester in the demo) get names that do not overlap."""
    data = pd.DataFrame({"la_code": ["309", "352", "302", "851"], "referrals": [348, 343, 250, 397],
                         "rereferrals": [65, 63, 37, 95]})
    f = funnels.funnel(data, target=0.226)
    for width in (7.5, 4.8):
        fig = national_charts.funnel_figure(f, highlight=["309", "352", "302", "851"], width=width)
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(boxes) == 4
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not boxes[i].overlaps(boxes[j]), (width, ax.texts[i].get_text(), ax.texts[j].get_text())
            assert ax.bbox.contains(boxes[i].x0, boxes[i].y0) and ax.bbox.contains(boxes[i].x1, boxes[i].y1)


def test_computed_funnel_uses_the_published_limits_and_agrees_with_the_table(tmp_path):
    """The funnel of councils' own figures is widened as the published one is (named in its legend), and the
    table's column gives each council the band the chart draws it in."""
    # 21% of 3600 is outside plain binomial limits around England's 22.6% but inside the widened ones
    write_result(tmp_path, "rereferral", "202", 3600, 756, year=2025)
    write_result(tmp_path, "rereferral", "203", 2000, 380, year=2025)
    s = national.build_national_summary(tmp_path)
    published = national.published_funnel(2025)
    assert s.computed_funnel.phi == pytest.approx(published.phi) and published.phi > 1
    plain = funnels.funnel(s.computed_funnel.points.rename(columns={"n": "referrals", "events": "rereferrals"}),
                            target=reference.england_rereferral_rate(2025))
    assert plain.band_of("202") != "within limits" and s.computed_funnel.band_of("202") == "within limits"
    rec = next(html for heading, html in s.tables if heading == "Computed against published")
    for code, name in (("202", "Camden"), ("203", "Greenwich")):
        row = rec.split(name)[1].split("</tr>")[0]
        assert row.rstrip().endswith(f"<td>{s.computed_funnel.band_of(code)}</td>"), row
    legend = [t.get_text() for t in national_charts.funnel_figure(s.computed_funnel).axes[0].get_legend().get_texts()]
    assert f"99.8% limits (widened for over-dispersion \u00d7{published.phi:.1f})" in legend
    assert any("same limits" in p for p in s.paragraphs)


def test_one_winsorised_phi_for_both_funnels_gives_the_numbers_of_before_the_split():
    """The re-referral funnel's multiplicative factor and the deprivation funnel's additive tau^2 share
    stats/funnel.winsorised_phi; the figures are those the two separate copies gave (commit 2b47eef)."""
    from insightlib.analyses.published_practice import children_in_need_funnel
    from insightlib.stats.deprivation_funnel import additive_tau2

    rng = np.random.default_rng(3)
    n = rng.integers(200, 5000, 60).astype(float)
    events = rng.binomial(n.astype(int), rng.uniform(0.15, 0.3, 60)).astype(float)
    # to 1e-12, not bit for bit: the last digit follows the CPU's vector width (seen on an AMD EPYC)
    same = dict(rel=1e-12, abs=0)
    assert funnels.overdispersion_factor(events, n, 0.22) == pytest.approx(23.39096715011935, **same)
    y, s = rng.normal(0, 0.2, 60), 1 / np.sqrt(n)
    assert additive_tau2(y, s, 2) == pytest.approx((0.020876627198665704, 51.23380577616312), **same)
    assert additive_tau2(y, s, 2)[1] == funnels.winsorised_phi(y / s)
    assert national.published_funnel(2025).phi == pytest.approx(27.13940148390492, **same)
    cin = children_in_need_funnel()
    assert (cin.tau2, cin.phi) == pytest.approx((0.017939473032217747, 47.69606831550258), **same)


def test_reconciliation_p_value_is_the_pooled_two_proportion_z_test():
    from statsmodels.stats.proportion import proportions_ztest

    from insightlib.stats.rates import two_proportion_p_value

    rec = national.reconcile("202", {"referrals": 2000, "rereferrals": 380, "year": 2025})
    pub = reference.published_rereferral_rates(2025).set_index("la_code").loc["202"]
    _, p = proportions_ztest([380, pub["rate"] * pub["referrals"]], [2000, pub["referrals"]])
    assert rec.p_value == pytest.approx(p, rel=1e-9)
    assert two_proportion_p_value(0, 10, 0.0, 0.0, 10) is None
