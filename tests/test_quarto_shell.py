"""The Quarto route's report pages: Pandoc's body of each report put into one page Quarto rendered
(batch/quarto_shell.py). Checked here on Quarto's markup as Quarto 1.10 writes it; where Quarto is
installed, against Quarto's own page for the same report."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from insightlib.batch import quarto_shell
from insightlib.batch.quarto_pdf import QuartoFailed
from insightlib.batch.quarto_shell import Fragment, Shell

#: The parts of the shell page that matter, as Quarto 1.10 renders quarto_shell.SHELL_SOURCE.
CALLOUT = (
    '<div class="callout callout-style-default callout-{kind} callout-titled">\n'
    '<div class="callout-header d-flex align-content-center">\n<div class="callout-title-container flex-fill">\n'
    "{title}\n</div>\n</div>\n"
    '<div class="callout-body-container callout-body">\n<p>INSIGHTSHELLCALLOUT</p>\n</div>\n</div>\n'
)
SHELL = (
    "<!DOCTYPE html><html><head><title>INSIGHTSHELLTITLE – insight: do children come back?</title>\n"
    '<meta name="quarto:offset" content="../../"></head>\n<body>\n'
    '<nav class="navbar"><a href="../../index.html">Home</a></nav>\n'
    '<div id="quarto-announcement" class="alert alert-warning hidden">Synthetic data</div>\n'
    '<nav id="TOC" role="doc-toc" class="toc-active">\n<h2 id="toc-title">On this page</h2>\n\n  <ul>\n'
    '  <li><a href="#insightshellheading" id="toc-insightshellheading" class="nav-link active" '
    'data-scroll-target="#insightshellheading">INSIGHTSHELLHEADING</a></li>\n  </ul>\n'
    '<div class="quarto-alternate-formats"><h2>Other Formats</h2><ul><li><a href="INSIGHTSHELLPDF.pdf">'
    '<i class="bi bi-file-pdf"></i>PDF</a></li></ul></div></nav>\n'
    '<main class="content" id="quarto-document-content">\n<header id="title-block-header">\n'
    '<h1 class="title">INSIGHTSHELLTITLE</h1>\n</header>\n'
    '<section id="insightshellheading" class="level2">\n'
    '<h2 class="anchored" data-anchor-id="insightshellheading">INSIGHTSHELLHEADING</h2>\n'
    "<p>INSIGHTSHELLSTART</p>\n"
    + CALLOUT.format(kind="warning", title="Warning")
    + "<p>INSIGHTSHELLEND</p>\n"
    + CALLOUT.format(kind="important", title="Important")
    + "<p>INSIGHTSHELLEND</p>\n</section>\n\n</main>\n<footer>Small numbers are suppressed</footer></body></html>"
)
TOC = (
    '<ul>\n<li><a href="#the-finding" id="toc-the-finding">The finding</a></li>\n'
    '<li><a href="#groups" id="toc-groups">Groups</a>\n<ul>\n'
    '<li><a href="#by-age" id="toc-by-age">By age</a></li>\n</ul></li>\n</ul>'
)
BODY = (
    "<p>Were children less likely to come back? INSIGHTSHELLTITLE stays as written.</p>\n"
    "<!--insight-callout-warning-->\n<p>A step of the analysis failed.</p>\n<!--/insight-callout-->\n"
    '<section id="the-finding" class="level2">\n<h2 class="anchored" data-anchor-id="the-finding">The finding</h2>\n'
    "<p>Re-referral was <strong>11.9</strong> points lower &amp; clear.</p>\n</section>\n"
    '<section id="groups" class="level2">\n<h2 class="anchored" data-anchor-id="groups">Groups</h2>\n'
    '<table class="caption-top table"><tr><td style="text-align: right;">120</td></tr></table>\n'
    '<section id="by-age" class="level3">\n<h3 class="anchored" data-anchor-id="by-age">By age</h3>\n'
    "<p>Under 5</p>\n</section>\n</section>"
)
FRAGMENT = Fragment(TOC, BODY, "Camden: <em>Did</em> it &amp; work?", "Camden: Did it &amp; work?")


def test_a_report_page_is_the_shell_with_the_reports_title_contents_pdf_and_body():
    page = Shell(SHELL).page(FRAGMENT, "intervention_effect.pdf")
    assert "<title>Camden: Did it &amp; work? – insight: do children come back?</title>" in page
    assert '<h1 class="title">Camden: <em>Did</em> it &amp; work?</h1>' in page
    assert page.count("INSIGHTSHELLTITLE") == 1  # the report's own text is never taken for a placeholder
    assert "INSIGHTSHELL" not in page.replace("INSIGHTSHELLTITLE stays", "")
    assert '<a href="intervention_effect.pdf"><i class="bi bi-file-pdf"></i>PDF</a>' in page
    # Quarto's scrolling table of contents: its classes, the first entry active, nested entries collapsed
    assert ('<a href="#the-finding" id="toc-the-finding" class="nav-link active" data-scroll-target="#the-finding">'
            in page)
    assert '<a href="#groups" id="toc-groups" class="nav-link" data-scroll-target="#groups">' in page
    assert '<ul class="collapse">\n<li><a href="#by-age"' in page
    # the failure notice in Quarto's own callout markup, with the report's sentence in it
    assert ('<div class="callout callout-style-default callout-warning callout-titled">' in page
            and "<p>A step of the analysis failed.</p>\n</div>\n</div>" in page and "insight-callout" not in page)
    assert page.index('id="quarto-announcement"') < page.index("Were children") < page.index("<footer>")
    assert "Under 5" in page and page.count('class="level2"') == 2


def test_quarto_markup_that_is_not_as_expected_is_refused_plainly():
    for broken in ("<html><body>nothing</body></html>", SHELL.replace("INSIGHTSHELLPDF", "x"),
                   SHELL.replace('<section id="insightshellheading"', "<div")):
        with pytest.raises(QuartoFailed, match="expected layout"):
            Shell(broken)


def test_search_entries_are_the_pages_sections_as_quarto_writes_them():
    entries = quarto_shell.search_entries("fgc/202/intervention_effect.html", "Camden: Did it & work?", BODY)
    assert [e["href"] for e in entries] == [
        "fgc/202/intervention_effect.html", "fgc/202/intervention_effect.html#the-finding",
        "fgc/202/intervention_effect.html#groups", "fgc/202/intervention_effect.html#by-age"]
    assert all(e["objectID"] == e["href"] and e["title"] == "Camden: Did it & work?" for e in entries)
    assert [e["section"] for e in entries] == ["", "The finding", "Groups", "By age"]
    assert entries[1]["text"] == "The finding\nRe-referral was 11.9 points lower & clear."
    assert "A step of the analysis failed." in entries[0]["text"] and "120" in entries[2]["text"]


def test_finish_reports_writes_pages_figures_and_search_and_removes_the_shell(tmp_path):
    site, project = tmp_path / "_site", tmp_path / "_site_src"
    shell = site / Path(quarto_shell.SHELL_PAGE).with_suffix(".html")
    shell.parent.mkdir(parents=True)
    shell.write_text(SHELL)
    (site / "search.json").write_text(json.dumps([
        {"objectID": "index.html", "href": "index.html", "title": "Home", "section": "", "text": "x"},
        {"objectID": "insight.shell/page/report.html", "href": "insight.shell/page/report.html",
         "title": "INSIGHTSHELLTITLE", "section": "", "text": "INSIGHTSHELLSTART"}]))
    qmd = project / "fgc" / "202" / "intervention_effect.qmd"
    (qmd.parent / "intervention_effect-figures").mkdir(parents=True)
    (qmd.parent / "intervention_effect-figures" / "figure-1.png").write_bytes(b"png")
    written = quarto_shell.finish_reports(site, project, [(qmd, FRAGMENT)])
    page = site / "fgc" / "202" / "intervention_effect.html"
    assert written == [page] and "Re-referral was" in page.read_text()
    assert (site / "fgc" / "202" / "intervention_effect-figures" / "figure-1.png").read_bytes() == b"png"
    assert not (site / quarto_shell.SHELL_DIR).exists()
    index = json.loads((site / "search.json").read_text())
    assert [e["href"] for e in index][:2] == ["index.html", "fgc/202/intervention_effect.html"]
    assert not any(e["href"].startswith(quarto_shell.SHELL_DIR) or e["title"] == "INSIGHTSHELLTITLE" for e in index)


def _main_text(page: str) -> str:
    main = re.search(r'<main class="content" id="quarto-document-content">(.*?)</main>', page, re.S).group(1)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", main)).split())


@pytest.mark.needs_quarto
@pytest.mark.skipif(shutil.which("quarto") is None, reason="quarto is not on PATH (see docs/publishing.md)")
def test_a_report_page_reads_as_quartos_own_page_for_it(tmp_path, monkeypatch):
    """The same report rendered by a whole Quarto pass: the same head, navbar, title, table of
    contents, body text, tables, images and alt text, notices and PDF link."""
    from test_site_layout import build, skip_trend

    from insightlib.batch import site

    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    build(tmp_path)  # fgc/204 did not finish: its notices are callouts
    assert site.render_site(tmp_path, engine="quarto").engine == "quarto"
    ours = {p: p.read_text() for p in (tmp_path / "_site").glob("*/*/*.html")}
    assert len(ours) >= 3
    project = tmp_path / "_site_src"
    for page in ours:  # now the whole Quarto pass, page by page, over the same sources
        qmd = project / page.relative_to(tmp_path / "_site").with_suffix(".qmd")
        proc = subprocess.run(["quarto", "render", str(qmd.relative_to(project)), "--no-execute"], cwd=project,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
    for path, mine in ours.items():
        theirs = path.read_text()
        assert _main_text(mine) == _main_text(theirs), path
        for pattern in (r"<title>.*?</title>", r'<nav id="TOC".*?</nav>', r'<nav class="navbar.*?</nav>',
                        r'<div id="quarto-announcement".*?</div>', r"<img [^>]*>", r"<table[^>]*>",
                        r'<div class="callout[^"]*">', r"<h\d[^>]*>", r'<script src="[^"]*"', r"<section[^>]*>",
                        r"<tr[^>]*>", r"<col [^>]*>"):
            assert re.findall(pattern, mine, re.S) == re.findall(pattern, theirs, re.S), (path, pattern)
