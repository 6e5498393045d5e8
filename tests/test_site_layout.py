"""The site as a reader sees it, measured in headless Chromium at 1280 px and at 390 px (a phone):
the navigation bar keeps to one line and shows the whole site title, nothing spills sideways, every
evaluation's answer sits at the left of the page, every report starts with its finding and names no
code before its Method section. The fallback is checked wherever Chromium is; the Quarto route where
quarto is on PATH too (CI has no quarto)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from insightlib.batch import site, site_pages
from leader_text import code_paths
from test_site import build_reports, skip_trend
from test_summary import make_fgc_site

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]

MEASURE = """<!doctype html><html><body style="margin:0">
<iframe id="page" src="%s" style="width:%dpx;height:2000px;border:0"></iframe>
<script>
document.getElementById('page').addEventListener('load', function () {
  setTimeout(function () {
    var w = document.getElementById('page').contentWindow, d = w.document;
    var nav = d.querySelector('nav.navbar') || d.querySelector('header.site');
    var title = d.querySelector('.navbar-title') || d.querySelector('header.site .brand');
    var answers = Array.prototype.map.call(d.querySelectorAll('.answer'), function (a) {
      var r = a.getBoundingClientRect(); return {left: r.left, width: r.width}; });
    var out = {width: w.innerWidth, scroll_width: d.documentElement.scrollWidth,
               nav_height: nav ? nav.getBoundingClientRect().height : null,
               title: title ? title.textContent.trim() : null,
               title_cut: title ? title.scrollWidth > title.clientWidth + 1 : null, answers: answers};
    var pre = document.createElement('pre'); pre.id = 'insight-measure';
    pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
  }, 500);
});
</script></body></html>"""


def measure(page: Path, width: int) -> dict:
    """Load ``page`` in a frame ``width`` px wide (Chromium's own window is at least 500 px) and read its layout."""
    import html

    probe = page.with_name(page.stem + ".measure.html")
    probe.write_text(MEASURE % (page.name, width), encoding="utf-8")
    try:
        proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                               "--window-size=1400,2000", "--virtual-time-budget=8000", "--dump-dom",
                               probe.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    m = re.search(r'<pre id="insight-measure">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    got = json.loads(html.unescape(m.group(1)))
    assert got["width"] == width, got
    return got


def check_pages(out: Path, home_title: str) -> None:
    home, evaluation = out / "index.html", out / "fgc-demo" / "index.html"
    for width in (1280, 390):
        for page in (home, evaluation, out / "national.html"):
            got = measure(page, width)
            assert got["scroll_width"] <= got["width"] + 1, (page.name, width, got)  # nothing spills sideways
            # one line on a screen; on a phone at most two short ones (Quarto folds its menu away)
            assert got["nav_height"] is not None and got["nav_height"] < (80 if width > 600 else 110), (page.name, width, got)
            assert got["title"] == home_title and not got["title_cut"], (page.name, width, got)
        for page in (home, evaluation):
            got = measure(page, width)
            assert got["answers"], (page, width)
            for a in got["answers"]:  # the answer starts at the left of the page, not a third of the way in
                assert a["left"] < 0.25 * width and a["width"] > 0.45 * min(width, 1000), (page, width, got)


def build(tmp_path: Path) -> Path:
    build_reports(tmp_path)
    make_fgc_site(tmp_path)
    return tmp_path


def test_fallback_site_fits_at_1280_and_390(tmp_path, monkeypatch):
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    build(tmp_path)
    site.render_site(tmp_path, engine="html")
    check_pages(tmp_path / "_site", site_pages.SITE_TITLE)


@pytest.mark.needs_quarto
@pytest.mark.skipif(shutil.which("quarto") is None, reason="quarto is not on PATH (see docs/publishing.md)")
def test_quarto_site_fits_at_1280_and_390_and_reads_as_it_should(tmp_path, monkeypatch):
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    build(tmp_path)
    result = site.render_site(tmp_path, engine="quarto")
    assert result.engine == "quarto", result.messages
    out = tmp_path / "_site"
    check_pages(out, site_pages.SITE_TITLE)
    report = (out / "rereferral-demo" / "202" / "rereferral.html").read_text()
    assert "Typst" not in report and re.search(r'href="rereferral\.pdf"[^>]*>.*?PDF', report, re.S)
    assert report.count('class="subtitle') == 0  # one title, no repeated question
    table = re.search(r"<table.*?</table>", report, re.S).group(0)
    assert ">0<" not in table  # no pandas row numbers
    assert re.search(r'<td[^>]*style="text-align: right;?"[^>]*>120</td>|<td class="num"[^>]*>120</td>', table)
    listing = (out / "fgc-demo" / "index.html").read_text()
    assert "Finding" in listing and "\u22129.6 (" in listing and ">Report<" not in listing
    assert (out / "fgc-demo" / "summary-figures" / "summary-intervention_effect-narrow.png").exists()
    for page in out.rglob("*.html"):
        assert code_paths(page.read_text()) == [], page
