"""The website: built from executed notebooks without re-running them, code hidden, alt text kept."""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from insightlib.report import charts, text
from insightlib import reference
from insightlib.batch import quarto, quarto_pdf, quarto_shell, site, site_html, site_reports
from insightlib.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CODE_MARKERS = ["SECRET_CODE_LINE", "print_me_not", "import insightlib"]


def make_report(root: Path, evaluation: str, la_code: str, *, title: str, status: str = "ok", measure=None):
    """A fake executed notebook as 'insight run' leaves it: outputs, manifest.json, results.json."""
    folder = root / evaluation / la_code
    folder.mkdir(parents=True)
    fig, ax = charts.new_figure("Most children were not re-referred within a year")
    ax.plot([0, 365], [1.0, 0.7])
    png = base64.b64encode(charts.to_png(fig)).decode("ascii")
    table = pd.DataFrame({"need": ["N1", "N2"], "children": [120, "c"]}).to_html()
    cells = [
        new_markdown_cell("# Re-referral after closure\n\nHow soon do children come back?"),
        new_code_cell("data = 'x'\nSECRET_CODE_LINE = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("la_code = '999'", metadata={"tags": ["injected-parameters"]}),
        new_code_cell("import insightlib\nprint_me_not = 1", outputs=[
            new_output("stream", name="stderr", text="UserWarning: noisy library warning\n"),
            new_output("display_data", data={"image/png": png, "text/plain": "fallback"},
                       metadata={"image/png": {"alt": f"Line chart of survival for council {la_code}"}}),
            new_output("execute_result", data={"text/html": table, "text/plain": "table"}, execution_count=3),
        ]),
    ]
    if status == "failed":  # papermill's banner at the top and its anchor before the failing cell
        banner = {"tags": ["papermill-error-cell-tag"]}
        cells.insert(0, new_markdown_cell('<span style="color:red">An Exception was encountered at In [4]</span>',
                                          metadata=banner))
        cells.append(new_markdown_cell('<span id="papermill-error-cell">Execution using papermill encountered '
                                       'an exception here and stopped:</span>', metadata=banner))
        cells.append(new_code_cell("boom()", outputs=[
            new_output("error", ename="ValueError", evalue="bad", traceback=["Traceback SECRET_TRACE"])]))
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nbformat.write(nb, str(folder / "rereferral.ipynb"))
    (folder / "manifest.json").write_text(json.dumps({"title": title, "status": status, "evaluation": evaluation}))
    results = {"la_code": la_code, "created": "2026-01-01T00:00:00", "secret_small_count": 3}
    if measure:
        results["dfe_measure"] = measure
    (folder / "results.json").write_text(json.dumps(results))


def build_small(root: Path) -> Path:
    """Two reports and no computed measure: the national page then has one figure (quick)."""
    make_report(root, "fgc", "204", title="Family Group Conferences", status="failed")
    make_report(root, "fgc", "205", title="Family Group Conferences")
    return root


def build_reports(root: Path) -> Path:
    make_report(root, "rereferral-demo", "202", title="Do children come back?",
                measure={"2024": {"referrals": 2000, "rereferrals": 400, "rate": 0.2, "complete": True},
                         "2025": {"referrals": 900, "rereferrals": 150, "rate": 0.17, "complete": False}})
    make_report(root, "rereferral-demo", "203", title="Do children come back?",
                measure={"referrals": 3000, "rereferrals": 700, "rate": 0.7 / 3})
    make_report(root, "fgc", "204", title="Family Group Conferences", status="failed")
    make_report(root, "fgc", "national", title="Family Group Conferences")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = build_reports(tmp_path_factory.mktemp("reports"))
    result = site.render_site(root, engine="html")
    return root, result


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a)


def parse(path: Path) -> Links:
    p = Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_site_layout_and_index_links_every_report(built):
    root, result = built
    out = root / "_site"
    assert result.engine == "html" and result.index == out / "index.html"
    expected = {"rereferral-demo/202/rereferral.html", "rereferral-demo/203/rereferral.html",
                "fgc/204/rereferral.html", "fgc/national/rereferral.html"}
    assert {r.href for r in result.reports} == expected
    for rel in expected | {"index.html", "national.html", "fgc/index.html", "rereferral-demo/index.html", "site.css"}:
        assert (out / rel).exists(), rel
    home = parse(out / "index.html")
    assert expected <= set(home.hrefs)
    assert {"fgc/index.html", "rereferral-demo/index.html", "national.html"} <= set(home.hrefs)
    listing = parse(out / "rereferral-demo" / "index.html")
    assert {"202/rereferral.html", "203/rereferral.html"} <= set(listing.hrefs)
    text = (out / "index.html").read_text()
    assert "Camden" in text and "Greenwich" in text and "Hackney" in text  # reference.council_name
    assert "All councils in the data" in text and "England (all councils)" not in text  # coverage unknown here
    # Every relative link on every page resolves to a file in the site.
    for page in out.rglob("*.html"):
        for href in parse(page).hrefs:
            if not href.startswith(("http", "#", "mailto:")):
                assert (page.parent / href.split("#")[0]).resolve().exists(), (page, href)


def test_code_warnings_and_tracebacks_are_hidden(built):
    root, _ = built
    for page in (root / "_site").rglob("*.html"):
        text = page.read_text()
        for marker in [*CODE_MARKERS, "noisy library warning", "SECRET_TRACE", "secret_small_count", "la_code = "]:
            assert marker not in text, (page, marker)
    failed = (root / "_site" / "fgc" / "204" / "rereferral.html").read_text()
    # one plain sentence says what went wrong and what to do; no banner, exception name or traceback
    assert html.escape(site_reports.FAILURE_SENTENCES["step"]) in failed and site_reports.STEP_FAILED in failed
    for marker in ("ValueError", "Exception was encountered", "papermill", "Traceback"):
        assert marker not in failed
    assert not list((root / "_site").rglob("results.json"))  # key figures stay out of the public site


def test_figures_keep_alt_text_and_tables_are_shown(built):
    root, _ = built
    page = root / "_site" / "rereferral-demo" / "202" / "rereferral.html"
    links = parse(page)
    assert [img.get("alt") for img in links.imgs] == ["Line chart of survival for council 202"]
    assert (page.parent / links.imgs[0]["src"]).read_bytes()[:4] == b"\x89PNG"  # a file beside the page
    text = page.read_text()
    assert 'class="dataframe"' in text and ">c</td>" in text
    assert "<h1>Camden: Do children come back?</h1>" in text and text.count("<h1") == 1  # the evaluation title
    for p in (root / "_site").rglob("*.html"):
        assert all((img.get("alt") or "").strip() for img in parse(p).imgs), p


def test_pages_are_readable_on_a_phone(built):
    root, _ = built
    css = (root / "_site" / "site.css").read_text()
    assert "@media (max-width" in css and "overflow-x: auto" in css and "max-width: 100%" in css
    for page in (root / "_site").rglob("*.html"):
        text = page.read_text()
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
        assert re.search(r'<link rel="stylesheet" href="(\.\./)*site\.css">', text)


def test_national_page(built):
    root, _ = built
    text = (root / "_site" / "national.html").read_text()
    assert "National summary" in text and 'class="sortable"' in text and "<script>" in text
    imgs = parse(root / "_site" / "national.html").imgs
    assert len(imgs) >= 3 and all(i["alt"].strip() for i in imgs)
    # Camden's computed measure is the latest complete year (2024), not the incomplete 2025.
    assert "computed 20.0%" in text


def test_tells_the_user_how_to_get_quarto(tmp_path, monkeypatch):
    build_small(tmp_path)
    monkeypatch.setattr(site.shutil, "which", lambda name: None)
    result = site.render_site(tmp_path)
    assert result.engine == "html"
    message = " ".join(result.messages)
    assert "https://quarto.org/docs/get-started/" in message and "conda install -c conda-forge quarto" in message
    # Rendering again replaces the site; a folder we did not make is never deleted.
    (tmp_path / "_site" / "stale.html").write_text("old")
    site.render_site(tmp_path)
    assert not (tmp_path / "_site" / "stale.html").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(InputError, match="did not write"):
        site.render_site(tmp_path, out_dir=foreign, engine="html")
    assert (foreign / "keep.txt").exists()


def test_no_notebooks_is_a_plain_error(tmp_path):
    with pytest.raises(InputError, match="no executed notebooks"):
        site.render_site(tmp_path)
    with pytest.raises(InputError, match="no reports folder"):
        site.render_site(tmp_path / "missing")


def skip_trend(code):
    raise InputError("not drawn in this test")


def test_quarto_project_files(tmp_path, monkeypatch):
    """The Quarto project is written (and checked) everywhere, even where quarto is absent."""
    build_reports(tmp_path)
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)  # trend charts are tested in test_national
    evaluations = site_reports.discover(tmp_path)
    (tmp_path / "_quarto.yml").write_text("project:\n  type: book\n")  # a user's own file: never touched
    quarto.write_quarto_project(tmp_path, evaluations)
    assert (tmp_path / "_quarto.yml").read_text() == "project:\n  type: book\n"
    proj = tmp_path / "_site_src"  # the project is written into render's own folder, and only there
    assert (proj / ".insight-site").exists() and not (tmp_path / "index.qmd").exists()
    assert not list((tmp_path / "rereferral-demo").rglob("*.qmd")) and not (tmp_path / "national-figures").exists()
    config = yaml.safe_load((proj / "_quarto.yml").read_text())
    assert config["project"]["type"] == "website" and config["project"]["output-dir"] == "../_site"
    assert config["execute"]["enabled"] is False and config["execute"]["echo"] is False
    # Quarto renders the site's own pages and one report shell; the reports' pages are Pandoc's (quarto_shell)
    assert config["project"]["render"] == ["index.qmd", "national.qmd", "*/index.qmd", quarto_shell.SHELL_PAGE]
    assert (proj / quarto_shell.SHELL_PAGE).read_text() == quarto_shell.SHELL_SOURCE
    nav = [item.get("href") for item in config["website"]["navbar"]["left"]]
    assert nav == ["index.qmd", None, "national.qmd"]  # the evaluations in one menu: the bar fits one line
    menu = config["website"]["navbar"]["left"][1]
    assert menu["text"] == "Evaluations"
    assert [i["href"] for i in menu["menu"]] == ["rereferral-demo/index.qmd", "fgc/index.qmd"]  # the basic question first
    front = yaml.safe_load((proj / "rereferral-demo" / "index.qmd").read_text().split("---")[1])
    assert front["listing"]["contents"] == "councils.yml" and front["listing"]["type"] == "table"
    items = yaml.safe_load((proj / "rereferral-demo" / "councils.yml").read_text())
    assert [(i["title"], i["path"]) for i in items] == [("Camden", "202/rereferral.html"),
                                                       ("Greenwich", "203/rereferral.html")]
    for item in items:
        assert (tmp_path / "rereferral-demo" / item["path"]).with_suffix(".ipynb").exists()
    meta = yaml.safe_load((proj / "rereferral-demo" / "202" / "_metadata.yml").read_text())
    assert set(meta["format"]) == {"html"} and meta["execute"]["enabled"] is False  # the PDF: quarto_pdf.make_pdf
    # Each executed notebook has a .qmd twin: outputs only, figures as files with their alt text.
    qmd = (proj / "rereferral-demo" / "202" / "rereferral.qmd").read_text()
    assert yaml.safe_load(qmd.split("---")[1])["title"] == text.quarto_md("Camden: Do children come back?")  # the evaluation title
    assert '![](rereferral-figures/figure-1.png){fig-alt="Line chart of survival for council 202"}' in qmd
    assert (proj / "rereferral-demo" / "202" / "rereferral-figures" / "figure-1.png").read_bytes()[:4] == b"\x89PNG"
    # a pandas table is Pandoc's own (native in HTML and Typst): no row numbers, numbers right-aligned
    assert "| need | children |\n|:---|---:|\n| N1 | 120 |\n| N2 | c |\n" in qmd
    assert "```{=html}" not in qmd and 'class="dataframe"' not in qmd
    assert "subtitle" not in meta and meta["format"]["html"]["format-links"] is False
    assert yaml.safe_load(qmd.split("---")[1])["other-links"] == [{"text": "PDF", "href": "rereferral.pdf",
                                                                   "icon": "file-pdf"}]
    assert "```{python}" not in qmd and "```python" not in qmd
    for marker in [*CODE_MARKERS, "noisy library warning", "secret_small_count"]:
        assert marker not in qmd
    failed_qmd = (proj / "fgc" / "204" / "rereferral.qmd").read_text()
    assert text.quarto_md(site_reports.FAILURE_SENTENCES["step"]) in failed_qmd and text.quarto_md(site_reports.STEP_FAILED) in failed_qmd
    for marker in ("SECRET_TRACE", "ValueError", "Exception was encountered", "papermill"):
        assert marker not in failed_qmd
    national_qmd = (proj / "national.qmd").read_text()
    figures = re.findall(r"\]\((national-figures/[^)]+\.png)\)\{fig-alt=\"[^\"]+\"\}", national_qmd)
    assert figures and all((proj / f).exists() for f in figures)
    assert "```{=html}" in national_qmd


def test_root_quarto_template_is_the_packaged_one():
    root = (REPO / "_quarto.yml").read_text()
    packaged = (REPO / "insightlib" / "templates" / "quarto.yml").read_text()
    assert root == packaged
    config = yaml.safe_load(root)
    assert config["project"]["type"] == "website"
    assert config["execute"] == {"enabled": False, "freeze": True, "echo": False, "warning": False}


@pytest.mark.needs_quarto
@pytest.mark.skipif(shutil.which("quarto") is None, reason="quarto is not on PATH (see docs/publishing.md)")
def test_quarto_renders_site_and_pdfs(tmp_path):
    build_reports(tmp_path)
    before = (tmp_path / "rereferral-demo" / "202" / "rereferral.ipynb").read_bytes()
    result = site.render_site(tmp_path, engine="quarto")
    assert result.engine == "quarto" and result.index.exists()
    out = tmp_path / "_site"
    assert (out / "rereferral-demo" / "202" / "rereferral.html").exists()
    assert (out / "rereferral-demo" / "202" / "rereferral.pdf").exists()
    assert (out / "national.html").exists()
    page = (out / "rereferral-demo" / "202" / "rereferral.html").read_text()
    assert not any(marker in page for marker in CODE_MARKERS)
    # Not re-executed: the notebook is unchanged.
    assert (tmp_path / "rereferral-demo" / "202" / "rereferral.ipynb").read_bytes() == before


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_site_in_chromium", REPO / "scripts" / "check_site_in_chromium.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.mark.needs_chromium
@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_every_page_loads_in_chromium_and_links_resolve(tmp_path):
    checker = _load_checker()
    build_small(tmp_path)
    site.render_site(tmp_path, engine="html")
    results = checker.check_site(tmp_path / "_site", "/usr/bin/chromium")
    assert len(results) == 5  # home, national, the evaluation page, two reports
    assert all(r.ok for r in results), [(str(r.page), r.problems) for r in results if not r.ok]
    assert all(r.links > 0 for r in results)
    # The checker notices a broken link.
    (tmp_path / "_site" / "fgc" / "index.html").unlink()
    home = checker.check_page("/usr/bin/chromium", tmp_path / "_site", tmp_path / "_site" / "index.html")
    assert not home.ok and any("fgc/index.html" in p for p in home.problems)
    # The command line: exit 1 on any failing page (a one-page site with a missing image).
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "index.html").write_text('<html><body><main><img src="gone.png" alt="x"></main></body></html>')
    assert checker.main([str(tiny), "--chromium", "/usr/bin/chromium"]) == 1
    assert checker.main([str(tmp_path / "nowhere"), "--chromium", "/usr/bin/chromium"]) == 2


def test_a_broken_results_file_does_not_stop_the_site(tmp_path):
    build_small(tmp_path)
    (tmp_path / "fgc" / "205" / "results.json").write_text("{not json")
    result = site.render_site(tmp_path, engine="html")
    page = (tmp_path / "_site" / "national.html").read_text()
    assert "could not be built" in page and "results.json" in page
    assert (tmp_path / "_site" / "fgc" / "205" / "rereferral.html").exists() and result.index.exists()


def test_template_is_read_from_the_working_folder_but_never_from_a_generated_file(tmp_path, monkeypatch):
    build_small(tmp_path)
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    custom = yaml.safe_load((REPO / "_quarto.yml").read_text())
    custom["website"]["title"] = "Our council's reports"
    (tmp_path / "_quarto.yml").write_text(yaml.safe_dump(custom))
    monkeypatch.chdir(tmp_path)
    quarto.write_quarto_project(tmp_path, site_reports.discover(tmp_path))
    first = yaml.safe_load((tmp_path / "_site_src" / "_quarto.yml").read_text())
    assert first["website"]["title"] == "Our council's reports"  # the user's own template
    assert yaml.safe_load((tmp_path / "_quarto.yml").read_text()) == custom  # and left as it was
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "_site_src" / "_quarto.yml", elsewhere / "_quarto.yml")
    monkeypatch.chdir(elsewhere)  # now cwd holds a generated file
    quarto.write_quarto_project(tmp_path, site_reports.discover(tmp_path))
    second = yaml.safe_load((tmp_path / "_site_src" / "_quarto.yml").read_text())
    hrefs = [i.get("href") for i in second["website"]["navbar"]["left"]]
    assert hrefs == ["index.qmd", None, "national.qmd"]  # packaged template, no duplicates
    assert [i["href"] for i in second["website"]["navbar"]["left"][1]["menu"]] == ["fgc/index.qmd"]


def test_national_scope_evaluation_page_lists_the_councils_it_covers(tmp_path, monkeypatch):
    """A programme evaluation (scope national) has one report in <name>/national/; its page names the
    councils it covers (from results.json), and title and description come from run.json."""
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    make_report(tmp_path, "programme-demo", "national", title="Programme")
    res_path = tmp_path / "programme-demo" / "national" / "results.json"
    res = json.loads(res_path.read_text())
    res["parameters"] = {"adoption": {"202": "2021-04-01", "203": None, "204": "2022-01-01"}}
    res_path.write_text(json.dumps(res))
    (tmp_path / "programme-demo" / "run.json").write_text(json.dumps({"evaluation": {
        "name": "programme-demo", "title": "Did re-referral change after adoption?", "scope": "national",
        "description": "Staggered adoption across councils.\n  Second line.", "councils": "all"}}))
    make_report(tmp_path, "fgc", "205", title="Family Group Conferences")
    evaluations = {ev.slug: ev for ev in site_reports.discover(tmp_path)}
    programme = evaluations["programme-demo"]
    assert programme.title == "Did re-referral change after adoption?"
    assert programme.covers == ["202", "203", "204"] and programme.national and not programme.councils
    site_html.render_html(tmp_path, list(evaluations.values()))
    page = (tmp_path / "_site" / "programme-demo" / "index.html").read_text()
    assert "It covers 3 councils: Camden (202), Greenwich (203), Hackney (204)." in page
    assert 'href="national/rereferral.html"' in page
    home = (tmp_path / "_site" / "index.html").read_text()
    assert "Staggered adoption across councils. Second line." in home and "One report across 3 councils" in home
    assert "Did re-referral change after adoption?" in home and "1 council report" in home
    # the report is labelled by how many councils it covers, never "England" for 3 of 153
    assert programme.reports[0].council == "3 councils" and "England" not in site_reports.council_label("national", programme.covers)
    assert site_reports.council_label("national", sorted(reference.local_authorities()["la_code"])) == "England (all councils)"


def test_report_tables_lose_row_numbers_and_align_numbers():
    frame = pd.DataFrame({"group": ["N1 Abuse", "N2 Disability"], "children": [120, "c"], "rate": ["12.5%", "x"]})
    tidy = site_html.tidy_tables(frame.to_html())
    assert "<th>0</th>" not in tidy and "<th>1</th>" not in tidy
    assert "<td>N1 Abuse</td>" in tidy and '<td class="num">120</td>' in tidy and '<td class="num">c</td>' in tidy
    assert '<td class="num">12.5%</td>' in tidy
    assert len(re.findall(r"<th[ >]", tidy)) == 3  # header cells only: group, children, rate
    named = site_html.tidy_tables(frame.set_index("group").to_html())
    assert "<th>N1 Abuse</th>" in named  # a meaningful index is kept


def test_report_figures_are_files_that_open_full_size(built):
    root, _ = built
    page = root / "_site" / "rereferral-demo" / "202" / "rereferral.html"
    text = page.read_text()
    assert "data:image" not in text
    links = re.findall(r'<a class="figure-link" href="([^"]+)"[^>]*><img alt="([^"]+)" src="([^"]+)"', text)
    assert links and all(a == src and (page.parent / a).read_bytes()[:4] == b"\x89PNG" for a, _, src in links)
    assert links[0][1] == "Line chart of survival for council 202"
    national = (root / "_site" / "national.html").read_text()
    narrow = re.findall(r'<source media="\(max-width: 40rem\)" srcset="([^"]+)">', national)
    assert narrow and all((root / "_site" / n).exists() for n in narrow)


def test_a_synthetic_site_says_so_on_every_page_and_a_real_one_never(tmp_path, monkeypatch):
    real = build_small(tmp_path / "real")
    site.render_site(real, engine="html")
    for page in (real / "_site").rglob("*.html"):
        assert "synthetic-banner" not in page.read_text() and "Synthetic data" not in page.read_text()
    made = build_small(tmp_path / "made")
    results = made / "fgc" / "205" / "results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), "synthetic": True}))
    site.render_site(made, engine="html")
    pages = list((made / "_site").rglob("*.html"))
    assert len(pages) == 5
    for page in pages:  # the home page, the national page and every report alike
        assert text.SYNTHETIC_NOTICE in html.unescape(page.read_text()), page
    # on the Quarto route: an announcement on every page that cannot be dismissed, and a callout
    # on the report itself (its PDF has no site banner)
    monkeypatch.chdir(tmp_path)
    quarto.write_quarto_project(made, site_reports.discover(made))
    config = yaml.safe_load((made / "_site_src" / "_quarto.yml").read_text())
    assert config["website"]["announcement"]["dismissable"] is False
    assert text.quarto_md(text.SYNTHETIC_NOTICE) in config["website"]["announcement"]["content"]
    assert text.quarto_md(text.SYNTHETIC_NOTICE) in (made / "_site_src" / "fgc" / "205" / "rereferral.qmd").read_text()
    quarto.write_quarto_project(real, site_reports.discover(real))
    assert "announcement" not in yaml.safe_load((real / "_site_src" / "_quarto.yml").read_text())["website"]


def _set_disclosure(root: Path, evaluation: str, la_code: str, threshold: int, rounding: int | None = None):
    path = root / evaluation / la_code / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["parameters"] = {"la_code": la_code, "disclosure_threshold": threshold,
                              **({"rounding": rounding} if rounding else {})}
    path.write_text(json.dumps(manifest))
    res_path = root / evaluation / la_code / "results.json"
    res = json.loads(res_path.read_text())
    res["parameters"] = manifest["parameters"]
    res_path.write_text(json.dumps(res))


def test_a_council_is_published_at_one_disclosure_setting_across_evaluations(tmp_path):
    """Issue 9: two evaluations of one council with thresholds 5 and 10 would let the first print a count
    the second hides (and difference away its secondary suppression): the site keeps the stricter only."""
    measure = {"2024": {"referrals": 2000, "rereferrals": 7, "rate": 7 / 2000, "complete": True}}
    make_report(tmp_path, "loose", "202", title="Loose", measure=measure)
    make_report(tmp_path, "strict", "202", title="Strict", measure=measure)
    make_report(tmp_path, "loose", "203", title="Loose")  # another council: no conflict, kept
    make_report(tmp_path, "rounded", "203", title="Rounded")
    _set_disclosure(tmp_path, "loose", "202", 5)
    _set_disclosure(tmp_path, "strict", "202", 10)
    _set_disclosure(tmp_path, "loose", "203", 5)
    _set_disclosure(tmp_path, "rounded", "203", 5, rounding=5)
    evaluations = site_reports.discover(tmp_path)
    assert site_reports.council_settings(evaluations) == {"202": (10, 0), "203": (5, 5)}
    result = site.render_site(tmp_path, engine="html")
    out = result.out_dir
    assert (out / "strict" / "202" / "rereferral.html").exists()
    assert not (out / "loose" / "202" / "rereferral.html").exists()
    assert not (out / "loose" / "203" / "rereferral.html").exists()  # exact beside rounded: left out
    assert (out / "rounded" / "203" / "rereferral.html").exists()
    notes = [m for m in result.messages if "Left out of the site" in m]
    assert len(notes) == 2 and any("loose/202: made with threshold 5" in m and "disclosure_threshold: 10" in m
                                   for m in notes)
    # the national page shows council 202 at threshold 10: its 7 re-referrals are hidden there too
    national = (out / "national.html").read_text()
    row = national.split(">Camden<")[1].split("</tr>")[0] if ">Camden<" in national else ""
    assert row and "0.4%" not in row and ">c<" in row
    # a report across councils counts for each council it covers
    assert set(site_reports.council_settings(site_reports.discover(tmp_path))) == {"202", "203"}


def test_the_safe_filter_keeps_exactly_insights_own_typst_settings():
    lua = (REPO / "insightlib" / "templates" / "insight_safe.lua").read_text()
    const = re.search(r'local INSIGHT_TYPST = "(.*)"', lua).group(1).encode().decode("unicode_escape")
    assert const == quarto_pdf.TYPST_HEADER.strip()


def test_the_cox_forest_plot_is_laid_out_again_for_a_phone():
    """The forest plot's labels (left) and figures (right) kept its phone drawing as wide as the desktop one;
    on a phone each level's label and figures sit on a line above its interval, in one narrow column."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    from insightlib.analyses import rereferral
    from insightlib.report import rereferral_charts
    from insightlib.simulate import survival as simulate_survival

    rep = rereferral.rereferral_report(simulate_survival.simulate_tables(1500, seed=4), group_by="primary_need")
    fig = rereferral_charts.forest_figure(rep.cox, rep.forest_title())
    wide, narrow = charts.to_png(fig), charts.to_png_narrow(fig)
    (ww, wh), (nw, nh) = (Image.open(io.BytesIO(b)).size for b in (wide, narrow))
    dpi = plt.rcParams["figure.dpi"]
    assert nw <= 1.05 * charts.NARROW_WIDTH * dpi < 0.6 * ww and nh / nw > wh / ww
    small = fig.narrow_drawing()
    words = [t.get_text() for t in small.axes[0].texts]
    for i, term in enumerate(rep.cox.terms["term"]):  # every level's figures are on the phone drawing too
        assert rereferral_charts._forest_words(rep.cox, i) in words, term
    assert all(t.get_fontsize() >= 9 for t in small.axes[0].texts)  # not shrunk: readable at a phone's width
    plt.close(small)
    plt.close(fig)


def test_report_charts_are_drawn_for_a_phone_too(tmp_path, monkeypatch):
    """charts.show stores a phone drawing beside the chart; both routes show it on small screens only."""
    import matplotlib.pyplot as plt
    from PIL import Image
    import io

    fig, ax = charts.new_figure("A headline long enough that it must wrap on a phone, with numbers at risk below")
    ax.plot([0, 100, 200, 365], [1.0, 0.9, 0.8, 0.7])
    before = tuple(fig.get_size_inches())
    wide, narrow = charts.to_png(fig), charts.to_png_narrow(fig)
    assert tuple(fig.get_size_inches()) == before  # the figure itself is left as it was
    (ww, wh), (nw, nh) = (Image.open(io.BytesIO(b)).size for b in (wide, narrow))
    assert nw < 0.8 * ww and nh / nw > wh / ww  # narrower and taller, not the wide one shrunk
    plt.close(fig)
    folder = tmp_path / "ev" / "202"
    folder.mkdir(parents=True)
    png, small = (base64.b64encode(b).decode() for b in (wide, narrow))
    nb = new_notebook(cells=[new_markdown_cell("# T\n\n## Headlines"), new_code_cell("x", outputs=[
        new_output("display_data", data={"image/png": png, "text/plain": "alt"},
                   metadata={"image/png": {"alt": "Chart alt", "narrow": small}})])])
    nbformat.write(nb, str(folder / "rereferral.ipynb"))
    (folder / "manifest.json").write_text(json.dumps({"title": "T", "status": "ok"}))
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    site.render_site(tmp_path, engine="html")
    page = (tmp_path / "_site" / "ev" / "202" / "rereferral.html").read_text()
    imgs = parse(tmp_path / "_site" / "ev" / "202" / "rereferral.html").imgs
    classes = {i.get("class"): i for i in imgs if i.get("class")}
    assert set(classes) == {"chart-wide", "chart-narrow"} and all(i["alt"] == "Chart alt" for i in classes.values())
    assert (tmp_path / "_site" / "ev" / "202" / classes["chart-narrow"]["src"]).read_bytes() == narrow
    css = (tmp_path / "_site" / "site.css").read_text()
    assert ".chart-narrow { display: block; }" in css and "base64" not in page
    quarto.write_quarto_project(tmp_path, site_reports.discover(tmp_path))
    page_dir = tmp_path / "_site_src" / "ev" / "202"
    qmd = (page_dir / "rereferral.qmd").read_text()
    assert '::: {.content-visible when-format="html"}\n::: {.chart-narrow}\n![](rereferral-figures/figure-1-narrow.png)' in qmd
    assert (page_dir / "rereferral-figures" / "figure-1-narrow.png").read_bytes() == narrow
