"""Each evaluation's page answers its question first: every council's estimate, the pooled estimate
where they share an intervention, a forest plot and a disclosure-controlled table; the home page leads
with each evaluation's answer in one sentence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_markdown_cell, new_notebook

from insightlib.batch import quarto, site, site_reports
from insightlib.errors import InputError
from insightlib.report.summary import summarise
from insightlib.stats.meta import random_effects

FGC = [("302", -0.035, 0.030, 288, 898), ("309", -0.096, 0.027, 432, 1105), ("352", -0.146, 0.022, 474, 1150)]


def fgc_results(rd, se, treated, control, intervention="Family Group Conference"):
    return {"notebook": "intervention_effect", "intervention": intervention, "horizon_days": 365, "estimand": "ATE",
            "parameters": {"disclosure_threshold": 5, "intervention": intervention},
            "counts": {"analysed_treated": treated, "analysed_control": control},
            "effect": {"risk_difference": {"estimate": rd, "ci_low": rd - 1.96 * se, "ci_high": rd + 1.96 * se, "se": se}}}


def test_intervention_summary_pools_the_councils_and_says_so():
    reports = [(c, f"Council {c}", fgc_results(rd, se, t, n)) for c, rd, se, t, n in FGC]
    s = summarise("intervention_effect", reports)
    ref = random_effects([100 * rd for _, rd, *_ in FGC], [100 * se for _, _, se, *_ in FGC])
    assert s.pooled.estimate == pytest.approx(ref.estimate) and s.pooled.i2 == pytest.approx(ref.i2)
    assert s.pooled.k == 3 and s.pooled.pred_low < s.pooled.ci_low
    assert s.sentence.startswith("Across 3 councils, re-referral within a year of a case closing was ")
    assert f"{abs(ref.estimate):.1f} percentage points lower" in s.sentence
    assert any("I\u00b2" in p and "prediction interval" in p for p in s.paragraphs)
    assert list(s.table["Council"]) == ["Council 302", "Council 309", "Council 352"]
    assert s.table["Points"].tolist() == ["\u22123.5", "\u22129.6", "\u221214.6"]
    assert s.chart is not None and s.chart.png[:4] == b"\x89PNG" and s.chart.png_narrow[:4] == b"\x89PNG"
    assert "Pooled" in s.chart.alt and "Council 309" in s.chart.alt


def test_a_council_resting_on_few_children_is_hidden_and_not_pooled():
    reports = [(c, f"Council {c}", fgc_results(rd, se, t, n)) for c, rd, se, t, n in FGC]
    reports.append(("999", "Small council", fgc_results(-0.5, 0.2, 3, 40)))
    s = summarise("intervention_effect", reports)
    assert s.pooled.k == 3  # the small council is left out
    small = s.table.loc[s.table["Council"] == "Small council"].iloc[0]
    assert small["Points"] == "c" and small["95% interval"] == ""
    assert small["With it"] == "c"  # 3 children: primary suppression
    assert small["Without"] == "c"  # secondary: else 43 - 40 gives it away with the total shown
    assert "Small council" in " ".join(s.paragraphs) and "Small council: not shown" in s.chart.alt
    assert "-50" not in s.chart.alt and "\u221250" not in s.chart.alt


def test_a_council_whose_page_says_too_few_to_estimate_is_not_pooled_either():
    """Groups large enough to show, but too few re-referred for an estimate (issue 11's rule on the council page)."""
    reports = [(c, f"Council {c}", fgc_results(rd, se, t, n)) for c, rd, se, t, n in FGC]
    tiny = fgc_results(-0.04, 0.05, 60, 300)
    tiny["estimable"] = False
    reports.append(("999", "Few re-referred", tiny))
    s = summarise("intervention_effect", reports)
    assert s.pooled.k == 3
    row = s.table.loc[s.table["Council"] == "Few re-referred"].iloc[0]
    assert row["Points"] == "c" and "Few re-referred" in " ".join(s.paragraphs)


def test_different_interventions_are_shown_but_not_pooled():
    reports = [(c, c, fgc_results(rd, se, t, n, intervention=name))
               for (c, rd, se, t, n), name in zip(FGC, ["A", "A", "B"])]
    s = summarise("intervention_effect", reports)
    assert s.pooled is None and "not pooled" in " ".join(s.paragraphs)


def test_rereferral_summary_gives_each_councils_rate_with_a_wilson_interval():
    from statsmodels.stats.proportion import proportion_confint

    def res(r, n):
        return {"notebook": "rereferral", "parameters": {"disclosure_threshold": 5},
                "dfe_measure": {"2024": {"referrals": n, "rereferrals": r, "complete": True},
                                "2025": {"referrals": 10, "rereferrals": 9, "complete": False}}}

    s = summarise("rereferral", [("202", "Camden", res(80, 400)), ("203", "Greenwich", res(2, 300))])
    camden, greenwich = s.rows
    lo, hi = proportion_confint(80, 400, method="wilson")
    assert camden.estimate == pytest.approx(20.0) and camden.ci_low == pytest.approx(100 * lo)
    assert camden.ci_high == pytest.approx(100 * hi) and camden.detail == "2024"
    assert not greenwich.shown and s.table.loc[1, "Rate (%)"] == "c" and s.table.loc[1, "Re-referrals"] == "c"
    assert "31 March 2024" in s.sentence and "20% (Camden)" in s.sentence and "England" in s.sentence


def test_a_notebook_without_a_cross_council_answer_has_no_summary():
    assert summarise("practice", [("202", "Camden", {"x": 1})]) is None
    assert summarise("intervention_effect", []) is None
    with pytest.raises(InputError):
        random_effects([1.0], [1.0])


def make_fgc_site(root: Path) -> Path:
    for code, rd, se, t, n in FGC:
        folder = root / "fgc-demo" / code
        folder.mkdir(parents=True)
        nb = new_notebook(cells=[new_markdown_cell("# Did the intervention change re-referral?\n\nText.")])
        nbformat.write(nb, str(folder / "intervention_effect.ipynb"))
        (folder / "manifest.json").write_text(json.dumps({"title": "Did FGCs reduce re-referral?", "status": "ok"}))
        (folder / "results.json").write_text(json.dumps(fgc_results(rd, se, t, n)))
    return root


def test_evaluation_page_and_home_lead_with_the_answer(tmp_path, monkeypatch):
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", lambda code: (_ for _ in ()).throw(InputError("x")))
    make_fgc_site(tmp_path)
    site.render_site(tmp_path, engine="html")
    page = (tmp_path / "_site" / "fgc-demo" / "index.html").read_text()
    answer = page.index('class="answer"')
    assert answer < page.index('href="302/intervention_effect.html"')  # the answer before any council's link
    assert answer < page.index("summary-table") < page.index("<h2>Method</h2>")
    assert "Across 3 councils" in page and "prediction interval" in page
    imgs = re.findall(r'(?:src|srcset)="(summary-figures/[^"]+)"', page)
    assert {"summary-figures/summary-intervention_effect.png", "summary-figures/summary-intervention_effect-narrow.png"} <= set(imgs)
    assert all((tmp_path / "_site" / "fgc-demo" / i).exists() for i in imgs)
    home = (tmp_path / "_site" / "index.html").read_text()
    assert home.index('class="answer"') < home.index('href="fgc-demo/302/intervention_effect.html"')
    # every number in the table is right-aligned
    assert re.search(r'<td class="num">\u22129\.6</td>', page)


def test_quarto_project_leads_with_the_answer(tmp_path, monkeypatch):
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", lambda code: (_ for _ in ()).throw(InputError("x")))
    make_fgc_site(tmp_path)
    quarto.write_quarto_project(tmp_path, site_reports.discover(tmp_path))
    qmd = (tmp_path / "_site_src" / "fgc-demo" / "index.qmd").read_text()
    front = yaml.safe_load(qmd.split("---")[1])
    assert front["resources"] == ["summary-figures/*.png"]
    assert front["listing"]["fields"] == ["title", "la_code", "finding"]
    body = qmd.split("---", 2)[2]
    assert body.index('class="answer"') < body.index("## About this evaluation") < body.index("## Method") \
        < body.index("## Reports")
    assert (tmp_path / "_site_src" / "fgc-demo" / "summary-figures" / "summary-intervention_effect-narrow.png").exists()
    items = yaml.safe_load((tmp_path / "_site_src" / "fgc-demo" / "councils.yml").read_text())
    assert items[0]["finding"].replace("\\", "") == "\u22123.5 (\u22129.4 to +2.4)"  # -3.5 +/- 1.96 x 3.0
    home = (tmp_path / "_site_src" / "index.qmd").read_text()
    assert "Across 3 councils" in home and "listing" not in home


def test_rounded_reports_give_rounded_counts_and_the_rate_of_the_rounded_counts():
    res = {"notebook": "rereferral", "parameters": {"disclosure_threshold": 5, "rounding": 5},
           "dfe_measure": {"2024": {"referrals": 403, "rereferrals": 81, "complete": True}}}
    s = summarise("rereferral", [("202", "Camden", res)])
    assert s.table.loc[0, "Referrals"] == "405" and s.table.loc[0, "Re-referrals"] == "80"
    assert s.rows[0].estimate == pytest.approx(100 * 80 / 405)
    fgc = fgc_results(-0.1, 0.03, 288, 898)
    fgc["parameters"]["rounding"] = 5
    s = summarise("intervention_effect", [("302", "Barnet", fgc), ("309", "Haringey", fgc_results(-0.1, 0.03, 432, 1105))])
    assert s.table["With it"].tolist() == ["290", "430"] and s.table["Cases"].tolist() == ["1,185", "1,535"]
