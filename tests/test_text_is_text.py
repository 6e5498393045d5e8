"""Text from data and evaluation files is text: a payload battery against the published site.

Payloads (script tags, event handlers, Quarto shortcodes reading the environment, raw
``{=html}``/``{=typst}`` blocks and attributes, Typst ``#read``, math, javascript links, Markdown)
are planted in every free-text field a report carries: the evaluation's title and description,
the council's name, and every kind of notebook output a sentence builder could put them in (a
Markdown sentence, an HTML table, plain text, a chart's alt text, an error). Both routes are
checked, in headless Chromium where it is installed: no script ran, no element was injected, no
payload was interpreted, the environment was never read, and the payloads appear literally.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from insightlib.report import charts, text
from insightlib.batch import quarto, site

CHROMIUM = "/usr/bin/chromium"
SECRET = "ENV-SECRET-7f3a"  # the value of an environment variable no page may ever show
CANARY = "RUNLOG-CANARY-91c2"  # a line in the reports folder no PDF may ever read in


def payloads(n: int) -> list[str]:
    """Every way we know to make text execute or be interpreted; ``n`` tells the copies apart."""
    return [
        f'<script>document.title="PWNED-{n}";document.documentElement.setAttribute("data-pwned","{n}")</script>',
        f'<img src=x id="pwn-img-{n}" onerror="document.title=\'PWNED-{n}\'">',
        f'<svg id="pwn-svg-{n}" onload="document.title=\'PWNED-{n}\'"></svg>',
        "{{< env INSIGHT_PROBE_SECRET >}}",
        "{{{< env INSIGHT_PROBE_SECRET >}}}",
        "{{< env INSIGHT_PROBE_SECRET >}",
        f'`<b id="pwn-raw-{n}">raw</b>`{{=html}}',
        '`#read("../run.log")`{=typst}',
        '`#read("/etc/hostname")`{=typst}',
        f'```{{=html}}\n<b id="pwn-block-{n}">block</b>\n```',
        f"$\\href{{javascript:document.title='PWNED-{n}'}}{{x}}$",
        f"[click-{n}](javascript:document.title='PWNED-{n}')",
        f'<a id="pwn-a-{n}" href="javascript:document.title=\'PWNED-{n}\'">link</a>',
        f"**bold-{n}** _it_ # heading",
        f"{{{{< include ../run.log >}}}} [x]{{#pwn-span-{n}}}",
    ]


PER_FIELD = len(payloads(0))


def _png() -> str:
    fig, ax = charts.new_figure("A chart")
    ax.plot([0, 1], [1, 0])
    return base64.b64encode(charts.to_png(fig)).decode("ascii")


def plant_reports(root: Path) -> dict[str, int]:
    """Reports whose every free-text field carries the battery; returns fields and payloads planted."""
    png = _png()
    fields: dict[str, int] = {}
    for i, la in enumerate(("202", "203")):
        folder = root / "battery" / la
        folder.mkdir(parents=True)
        cells = [new_markdown_cell("# Report heading")]
        outputs = []
        for j, p in enumerate(payloads(100 * i)):
            # a sentence builder that forgot text.md, an HTML table of data, plain text, alt text
            outputs.append(new_output("display_data", data={"text/markdown": f"Sentence with {p} inside.",
                                                            "text/plain": "x"}))
            # and one that did escape it: that one must show the payload exactly as written
            outputs.append(new_output("display_data", data={"text/markdown": f"Escaped: **{text.md(p)}** here.",
                                                            "text/plain": "x"}))
            table = pd.DataFrame({"Intervention": [p], "Team": [p + " team"], "Children": ["c"]}).to_html()
            outputs.append(new_output("display_data", data={"text/html": table, "text/plain": "t"}))
            outputs.append(new_output("stream", name="stdout", text=f"printed {p}\n"))
            outputs.append(new_output("display_data", data={"text/plain": f"plain {p}"}))
            outputs.append(new_output("display_data", data={"image/png": png, "text/plain": "f"},
                                      metadata={"image/png": {"alt": f"Chart of {p}"}}))
        for name in ("markdown sentence", "markdown sentence (escaped)", "table cell (intervention)", "table cell (team)", "printed text",
                     "plain-text output", "alt text"):
            fields[name] = fields.get(name, 0) + PER_FIELD
        cells.append(new_code_cell("x", outputs=outputs))
        status = "ok"
        if i == 1:  # a failed report whose error message quotes data
            status = "failed"
            cells.append(new_code_cell("boom()", outputs=[new_output(
                "error", ename="ValueError", evalue=" ".join(payloads(7)), traceback=[" ".join(payloads(8))])]))
            fields["error message"] = PER_FIELD
        nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                          "display_name": "Python 3"}}),
                       str(folder / "rereferral.ipynb"))
        (folder / "manifest.json").write_text(json.dumps({
            "title": "Title " + " ".join(payloads(300)), "status": status, "evaluation": "battery",
            "error": "ValueError: " + " ".join(payloads(9)) if status == "failed" else None}))
        (folder / "results.json").write_text(json.dumps({"la_code": la}))
    fields["title"] = PER_FIELD
    fields["description"] = PER_FIELD
    (root / "battery" / "run.json").write_text(json.dumps({"evaluation": {
        "title": "Title " + " ".join(payloads(400)), "description": "About " + " ".join(payloads(500))}}))
    (root / "battery" / "run.log").write_text(f"{CANARY} a run log the site must never show\n")
    return fields


def planted_text(fields: dict[str, int]) -> int:
    return sum(fields.values())


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.js_links: list[str] = []
        self.title = ""
        self._in_title = False
        self.text: list[str] = []
        self.root_attrs: dict = {}
        self.handlers: list[str] = []  # event-handler attributes whose code is a planted payload
        self._tag = ""
        self.planted_scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.root_attrs = a
        self._tag = tag
        self.handlers += [f"{tag} {k}" for k, v in attrs if k.startswith("on") and "PWNED" in (v or "")]
        if a.get("id"):
            self.ids.append(a["id"])
        for key in ("href", "src", "action", "formaction"):
            if (a.get(key) or "").strip().lower().startswith("javascript:"):
                self.js_links.append(a[key])
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._tag == "script" and "PWNED" in data:
            self.planted_scripts += 1
        self.text.append(data)


def check_dom(dom: str, page: str) -> list[str]:
    parsed = _Dom()
    parsed.feed(dom)
    problems = []
    if parsed.title.strip().startswith("PWNED") or "data-pwned" in parsed.root_attrs:
        problems.append(f"{page}: a planted script ran")
    if parsed.handlers or parsed.planted_scripts:
        problems.append(f"{page}: planted script elements or handlers: {parsed.handlers[:3]}")
    injected = [i for i in parsed.ids if i.startswith("pwn-")]
    if injected:
        problems.append(f"{page}: planted elements injected: {injected[:3]}")
    if parsed.js_links:
        problems.append(f"{page}: javascript: link {parsed.js_links[0]!r}")
    return problems


def check_files(site_dir: Path) -> list[str]:
    """No page, search index or PDF carries the environment's secret or a file read by Typst."""
    problems = []
    for path in site_dir.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".pdf" and shutil.which("pdftotext"):
            data += subprocess.run(["pdftotext", str(path), "-"], capture_output=True).stdout
        for needle in (SECRET, CANARY):
            if needle.encode() in data:
                problems.append(f"{path.relative_to(site_dir)}: contains {needle}")
    return problems


def _dump(page: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="insight-battery-") as profile:
        proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-extensions", "--virtual-time-budget=3000", f"--user-data-dir={profile}",
                               "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0 and "<main" in proc.stdout, proc.stderr[-500:]
    return proc.stdout


def _report_pages(site_dir: Path) -> list[Path]:
    return sorted(p for p in site_dir.rglob("*.html") if "site_libs" not in p.parts)


def _literal(site_dir: Path, page: Path) -> str:
    """A page's visible text with whitespace collapsed (what a reader copies)."""
    parsed = _Dom()
    parsed.feed(page.read_text(encoding="utf-8"))
    return " ".join("".join(parsed.text).split())


def _assert_literal(site_dir: Path, report: Path, n: int):
    shown = _literal(site_dir, report)
    for p in payloads(n):
        expected = " ".join(p.split())
        assert expected in shown, f"{expected!r} is not shown literally in {report.relative_to(site_dir)}"


# --- unit level: each escape on its own -----------------------------------------------------


@pytest.mark.parametrize("payload", payloads(1))
def test_md_renders_as_the_literal_text_in_commonmark(payload):
    from nbconvert.filters.markdown import markdown2html

    rendered = markdown2html(f"Before {text.md(payload)} after.")
    parsed = _Dom()
    parsed.feed(rendered)
    assert " ".join("".join(parsed.text).split()) == " ".join(f"Before {payload} after.".split())
    assert not [i for i in parsed.ids if i.startswith("pwn-")] and "<script" not in rendered


def test_safe_html_keeps_tables_and_escapes_everything_else():
    cleaned = text.safe_html('<table class="dataframe"><thead><tr><th>x</th></tr></thead><tbody><tr><td>1</td>'
                             '</tr></tbody></table><script>x()</script><img src=x onerror=y()>'
                             '<a href="javascript:z()">l</a><b onclick="w()">b</b>')
    assert '<table class="dataframe"><thead><tr><th>x</th>' in cleaned
    assert "<script" not in cleaned and "&lt;script&gt;" in cleaned and "<img" not in cleaned
    assert "javascript" not in cleaned.split("&lt;")[0] and "onclick" not in cleaned


def test_safe_html_drops_the_style_block_pandas_puts_before_a_table():
    """A pandas table's <style scoped> block is neither applied nor shown as text on the page."""
    import pandas as pd

    cleaned = text.safe_html(pd.DataFrame({"Councils": [3]})._repr_html_())
    assert "<table" in cleaned and "style" not in cleaned and "dataframe tbody" not in cleaned
    # only a whole element goes: an unclosed one is still shown as the text it is
    assert "&lt;style&gt;" in text.safe_html("<style>p {}")


def test_quarto_md_breaks_every_run_of_braces():
    for p in payloads(1):
        # every two braces in a row have an empty span between them; nothing is left unescaped
        assert not any(re.search(r"\\?[{}]\\?[{}]", piece) for piece in text.quarto_md(p).split("[]{}")), p
        assert not re.search(r"(?<!\\)[{}$<]", text.neutralise_markdown(p).replace("[]{}", "")), p


# --- the HTML fallback (everywhere, CI included) -------------------------------------------


@pytest.fixture(scope="module")
def html_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("battery-html")
    fields = plant_reports(root)
    site.render_site(root, engine="html")
    return root, fields


def test_fallback_pages_escape_every_payload(html_site):
    root, fields = html_site
    site_dir = root / "_site"
    pages = _report_pages(site_dir)
    assert len(pages) >= 4
    for page in pages:  # static check of the written HTML (no browser needed)
        problems = check_dom(page.read_text(encoding="utf-8"), page.name)
        assert not problems, problems
    for la, n in (("202", 0), ("203", 100)):
        _assert_literal(site_dir, site_dir / "battery" / la / "rereferral.html", n)
    failed = (site_dir / "battery" / "203" / "rereferral.html").read_text()
    assert "ValueError" not in failed and "Traceback" not in failed
    assert html_site_counts(fields)["payloads"] >= 100


def html_site_counts(fields):
    return {"fields": len(fields), "payloads": planted_text(fields), "distinct": PER_FIELD}


@pytest.mark.needs_chromium
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_fallback_in_chromium_runs_no_planted_script(html_site):
    root, fields = html_site
    problems = []
    for page in _report_pages(root / "_site"):
        problems += check_dom(_dump(page), page.name)
    assert not problems, problems
    print(f"payload battery (HTML fallback): {len(fields)} fields, {planted_text(fields)} payloads "
          f"({PER_FIELD} kinds), {len(_report_pages(root / '_site'))} pages checked in Chromium")


# --- the Quarto route (where quarto is installed) -------------------------------------------


@pytest.fixture(scope="module")
def quarto_site(tmp_path_factory):
    if shutil.which("quarto") is None:
        pytest.skip("quarto is not on PATH (see docs/publishing.md)")
    root = tmp_path_factory.mktemp("battery-quarto")
    fields = plant_reports(root)
    old = os.environ.get("INSIGHT_PROBE_SECRET")
    os.environ["INSIGHT_PROBE_SECRET"] = SECRET
    try:
        result = site.render_site(root, engine="quarto")
    finally:
        if old is None:
            os.environ.pop("INSIGHT_PROBE_SECRET", None)
        else:
            os.environ["INSIGHT_PROBE_SECRET"] = old
    assert result.engine == "quarto", result.messages
    return root, fields


@pytest.mark.needs_quarto
@pytest.mark.slow
def test_quarto_pages_and_pdfs_interpret_no_payload(quarto_site):
    root, fields = quarto_site
    site_dir = root / "_site"
    assert (site_dir / "battery" / "202" / "rereferral.pdf").exists()
    assert not check_files(site_dir), check_files(site_dir)
    for page in _report_pages(site_dir):
        problems = check_dom(page.read_text(encoding="utf-8"), page.name)
        assert not problems, problems
    for la, n in (("202", 0), ("203", 100)):
        _assert_literal(site_dir, site_dir / "battery" / la / "rereferral.html", n)
    pdf = subprocess.run(["pdftotext", str(site_dir / "battery" / "202" / "rereferral.pdf"), "-"],
                         capture_output=True, text=True).stdout if shutil.which("pdftotext") else ""
    if pdf:
        assert "{{< env INSIGHT_PROBE_SECRET >}}" in " ".join(pdf.split())  # shown, not resolved


@pytest.mark.needs_quarto
@pytest.mark.needs_chromium
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_quarto_site_in_chromium_runs_no_planted_script(quarto_site):
    root, fields = quarto_site
    problems = []
    pages = [p for p in _report_pages(root / "_site")]
    for page in pages:
        problems += check_dom(_dump(page), page.name)
    assert not problems, problems
    print(f"payload battery (Quarto): {len(fields)} fields, {planted_text(fields)} payloads, {len(pages)} pages")


# --- end to end: payloads in the data and the evaluation file, through the real notebooks -------

#: One name carrying a payload of each kind (one line: a name in a CSV cell).
NAME = ('Family <script>document.title="PWNED-e2e"</script><img src=x id="pwn-e2e" onerror="document.title=\'PWNED\'">'
        ' {{< env INSIGHT_PROBE_SECRET >}} `#read("../run.log")`{=typst} `<b id="pwn-raw-e2e">r</b>`{=html}'
        " $x^2$ [c](javascript:document.title='PWNED') **b** _i_ Conference")


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory):
    """One synthetic council whose intervention names, teams and council name carry payloads, run
    through the re-referral (grouped by intervention: the group labels), intervention and practice notebooks
    by evaluation files whose title, description and parameters carry them too."""
    import sys

    from insightlib.simulate import synth
    from insightlib.ingest.pseudonymise import make_key_file

    root = tmp_path_factory.mktemp("battery-e2e")
    data = synth.generate(1, 500, 5, root / "data")
    iv = pd.read_csv(data / "interventions.csv", dtype=str, keep_default_na=False)
    iv["intervention"] = iv["intervention"].replace({"Family Group Conference": NAME, "Early Help": NAME + " 2"})
    iv.to_csv(data / "interventions.csv", index=False)
    al = pd.read_csv(data / "allocations.csv", dtype=str, keep_default_na=False)
    al["team"] = NAME + " team"
    al.to_csv(data / "allocations.csv", index=False)
    co = pd.read_csv(data / "councils.csv", dtype=str, keep_default_na=False)
    co["la_name"] = NAME + " council"
    co.to_csv(data / "councils.csv", index=False)
    key = root / "insight.key"
    make_key_file(key)
    env = {**os.environ, "INSIGHT_KEY_FILE": str(key), "INSIGHT_PROBE_SECRET": SECRET}
    repo = Path(__file__).resolve().parents[1]
    evaluations = {
        "rereferral": {"parameters": {"group_by": "intervention", "min_group_size": 5, "title": "T " + NAME}},
        "intervention_effect": {"parameters": {"intervention": NAME, "bootstrap_reps": 20,
                                               "refutation_simulations": 1, "title": "T " + NAME}},
        # teams (a practice pattern) and the council's name reach the practice report's tables and sentences
        "practice_insight": {"parameters": {"stability_checks": False, "title": "T " + NAME}},
    }
    out = root / "reports"
    runs = []
    for notebook, extra in evaluations.items():
        path = root / f"{notebook}.yml"
        path.write_text(json.dumps({"name": f"battery-{notebook.replace('_', '-')}", "title": "Title " + NAME,
                                    "description": "About " + NAME, "notebook": notebook, "data": str(data),
                                    **extra}))
        runs.append(subprocess.run([sys.executable, "-m", "insightlib.batch.cli", "run", str(path), "--out", str(out),
                                    "--workers", "1", "--no-progress"], cwd=repo, env=env, capture_output=True,
                                   text=True, timeout=900))
    (out / "battery-rereferral" / "run.log").open("a").write(CANARY + "\n")
    return {"out": out, "runs": runs, "env": env, "repo": repo}


def _e2e_pages(site_dir: Path) -> list[Path]:
    """The council reports: <evaluation>/<la_code>/<notebook>.html."""
    return [p for p in _report_pages(site_dir) if len(p.relative_to(site_dir).parts) == 3]


def _check_e2e_site(site_dir: Path, browser: bool):
    reports = _e2e_pages(site_dir)
    assert len(reports) == 3, reports
    problems = check_files(site_dir)
    for page in _report_pages(site_dir):
        problems += check_dom(page.read_text(encoding="utf-8"), page.name)
        if browser:
            problems += check_dom(_dump(page), page.name)
    assert not problems, problems
    for page in reports:  # the title, and the intervention's name where the report names it, exactly as written
        shown = _literal(site_dir, page)
        assert "Title " + NAME in shown or "T " + NAME in shown, page
        if page.stem != "practice_insight":  # one team only here: the practice report shows no team table
            assert NAME in shown.replace("Title " + NAME, "").replace("T " + NAME, ""), page


@pytest.mark.slow
def test_e2e_payloads_in_data_and_evaluation_files_are_text_in_the_fallback(e2e_run):
    for proc in e2e_run["runs"]:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    site.render_site(e2e_run["out"], engine="html")
    _check_e2e_site(e2e_run["out"] / "_site", browser=Path(CHROMIUM).exists())


@pytest.mark.slow
@pytest.mark.needs_quarto
def test_e2e_payloads_are_text_on_the_quarto_route(e2e_run, monkeypatch):
    if shutil.which("quarto") is None:
        pytest.skip("quarto is not on PATH (see docs/publishing.md)")
    monkeypatch.setenv("INSIGHT_PROBE_SECRET", SECRET)
    result = site.render_site(e2e_run["out"], engine="quarto")
    assert result.engine == "quarto", result.messages
    _check_e2e_site(e2e_run["out"] / "_site", browser=Path(CHROMIUM).exists())  # PDFs' text included
    assert list((e2e_run["out"] / "_site").rglob("*.pdf"))


# --- the sentence builders themselves: text from data is escaped where the sentence is made ----------
# (the render-time safeguards, text.safe_html and text.neutralise_markdown, are a backstop only: with them
# alone ``**x**`` in a name would still render bold)


def _shows_literally(markdown: str, payload: str) -> None:
    from nbconvert.filters.markdown import markdown2html

    rendered = markdown2html(markdown)
    parsed = _Dom()
    parsed.feed(rendered)
    shown = " ".join("".join(parsed.text).split())
    assert " ".join(payload.split()) in shown, (payload, markdown)
    assert not [i for i in parsed.ids if i.startswith("pwn-")] and "<script" not in rendered, markdown


@pytest.mark.parametrize("payload", payloads(2))
def test_programme_sentences_escape_council_names_and_notes(payload, monkeypatch):
    import numpy as np

    from insightlib import reference
    from insightlib.analyses import programme_councils
    from insightlib.report import programme as report_programme

    monkeypatch.setattr(reference, "council_name", lambda code: f"{payload} council")
    rng = np.random.default_rng(7)
    t = np.arange(24)
    its = programme_councils.interrupted_time_series(pd.DataFrame({"la_code": "202", "period": t,
                                                   "rereferral_rate": 25 - 4.0 * (t >= 12) + rng.normal(0, 1, 24)}),
                                     "202", start=12)
    its.note = f"note {payload}"
    _shows_literally(its.summary(), f"{payload} council")
    _shows_literally(its.summary(), f"note {payload}")
    rows = [{"la_code": code, "period": 8000 + q, "rereferral_rate": 25 + rng.normal(0, 1),
             "adoption_period": 8012 if code == "202" else None}
            for code in ["202"] + reference.neighbours_of("202") for q in range(24)]
    nc = programme_councils.neighbour_comparison(pd.DataFrame(rows), "202")
    _shows_literally(nc.summary(), f"{payload} council")
    ev = report_programme.ProgrammeEvaluation(programme="P", outcome="rereferral_rate", effect=None, effect_problem=None, its={},
                                neighbours={}, problems={"202": f"no series, because {payload}"}, placebo=None,
                                n_councils=3, n_adopting=1)
    for note in ev.council_notes():
        _shows_literally(note, f"{payload} council")
        _shows_literally(note, payload)


@pytest.mark.parametrize("payload", payloads(3))
def test_skills_sentences_escape_area_occupation_subject_and_industry(payload):
    from types import SimpleNamespace

    from insightlib.report.skills import SkillsReport

    gap = {"demand_share": 0.2, "supply_share": 0.1, "gap": 0.7, "gap_ci_low": 0.2, "gap_ci_high": 1.1,
           "rank_low": 1, "rank_high": 2}
    result = SimpleNamespace(
        area=SimpleNamespace(name=f"Area {payload}"),
        occupations=pd.DataFrame([{"occupation": f"Occupation {payload}", **gap}]),
        subjects=pd.DataFrame([{"subject": f"Subject {payload}", **gap, "gap": -0.7, "gap_ci_low": -1.1,
                                "gap_ci_high": -0.2}]),
        industries=pd.DataFrame([{"industry": f"Industry {payload}", "share": 0.3, "england_share": 0.2,
                                  "relative_to_england": 1.5}]),
        ess=pd.DataFrame({"comparator": []}), neet=pd.DataFrame(), neet_forecast=pd.DataFrame(), neet_backtest={})
    report = SkillsReport(result)
    head = report.headlines()
    _shows_literally(head[0], f"Area {payload}")
    _shows_literally(head[0], f"occupation {payload}".lower())  # the sentence lower-cases the group's name
    _shows_literally(head[1], f"Subject {payload}")
    _shows_literally(report.short_of_learners()[0], f"Occupation {payload}")
    _shows_literally(report.few_local_jobs()[0], f"Subject {payload}")
    _shows_literally(report.industry_sentence(), f"industry {payload.lower()}")


def test_national_page_paragraphs_are_plain_text_on_the_quarto_route(tmp_path, monkeypatch):
    """The national page's sentences (council names in them) are written to national.qmd with every mark escaped."""
    from insightlib.analyses import national

    payload = "**bold-9** _it_ `code` <b id=\"pwn-n\">x</b> {{< env INSIGHT_PROBE_SECRET >}} [l](javascript:x)"
    real = national.reference.council_name
    monkeypatch.setattr(national.reference, "council_name", lambda code: payload if code == "202" else real(code))
    folder = tmp_path / "rereferral" / "202"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"la_code": "202", "created": "2026-01-01T00:00:00",
                                                     "dfe_measure": {"referrals": 2000, "rereferrals": 380,
                                                                     "year": 2025}}))
    summary = national.build_national_summary(tmp_path)
    said = [p for sec in summary.sections for p in sec.paragraphs if payload in p]
    assert said, "the planted name should appear in a sentence"
    for p in said:  # quarto_md is md with braces broken by empty Pandoc spans (which CommonMark would show)
        _shows_literally(text.md(p), payload)
    quarto.write_quarto_project(tmp_path, [])
    qmd = (tmp_path / "_site_src" / "national.qmd").read_text()
    assert text.quarto_md(said[0]) in qmd and payload not in qmd
