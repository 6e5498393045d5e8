"""The website as a Quarto project: a ``.qmd`` twin of every executed notebook (markdown and
outputs only, nothing to execute), listing pages, the project's _quarto.yml, and ``quarto render``.

Split from site.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from insightlib.errors import InputError, InsightError
from insightlib.report import text

from .site_pages import (
    PROJECT_DIR,
    _prepare_out_dir,
    GENERATED,
    HOME_COUNCILS,
    INSTALL_QUARTO,
    WRITTEN,
    _generated,
    _mark_site,
    _note_skipped,
    _owns_site,
    _templates_dir,
)
from .quarto_pages import _attribute, _fence, _yaml_dump, notebook_to_qmd
from .quarto_pdf import QuartoFailed
from .quarto_shell import SHELL_PAGE, SHELL_SOURCE, ReportBuilds, finish_reports
from .site_reports import (
    Evaluation,
    SiteResult,
    council_label,
    council_settings,
    evaluation_summary,
    is_synthetic_site,
    reading_order,
    summary_html,
    _listing_finding,
    _write_summary_chart,
)


#: The Lua filter that shows any raw block or inline that is not insight's own HTML as text.
SAFE_FILTER = "_insight_safe.lua"
#: The only environment variables Quarto is given: it cannot publish a key or a secret from the
#: environment even if a shortcode slipped through.
QUARTO_ENVIRONMENT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TMP",
    "TEMP",
    "TZ",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
)
#: The site's own styles on top of the Quarto theme (numbers right-aligned, the answer set apart).
SITE_CSS = "_insight.css"
QUARTO_CSS = """td.num, th.num { text-align: right; white-space: nowrap; }
td.num, table td { font-variant-numeric: tabular-nums; }
.answer { font-size: 1.2rem; font-weight: 600; border-left: 5px solid #28A197; padding: 0.25rem 0 0.25rem 0.75rem;
          margin-bottom: 1rem; }
.table-wrap { overflow-x: auto; max-width: 100%; }
.table-note { font-size: 0.9rem; color: #3D3D3D; }
.navbar-title { white-space: normal; }
.chart-narrow { display: none; }
@media (max-width: 40rem) { .chart-wide { display: none; } .chart-narrow { display: block; } }
.summary-chart img, main img { max-width: 100%; height: auto; }
.summary-chart { margin: 1rem 0; }
.quarto-listing table, main table { display: block; overflow-x: auto; max-width: 100%; }
"""
#: A report page's settings (its shell is rendered with them; the PDF is made by make_pdf).
REPORT_METADATA = {
    "format": {"html": {"toc": True, "format-links": False}},
    "execute": {"enabled": False, "echo": False},
}
#: Files at the top of the project folder (earlier versions wrote them at the top of the reports folder).
PROJECT_FILES = ("_quarto.yml", "index.qmd", "national.qmd", SAFE_FILTER, SITE_CSS)


def check_project_ownership(reports_dir: Path, force: bool = False) -> None:
    """Refuse to replace a project folder or site folder that render did not write.

    Render writes only into ``<reports>/_site_src`` (the Quarto project) and ``<reports>/_site``
    (the site), each marked as its own; a user's _quarto.yml, index.qmd ... anywhere else in the
    reports folder are never touched."""
    if force:
        return
    theirs = []
    if not _owns_site(reports_dir / PROJECT_DIR):
        theirs.append(f"{PROJECT_DIR}/")
    if not _owns_site(reports_dir / "_site", reports_dir):
        theirs.append("_site/")
    if theirs:
        raise InputError(
            f"{reports_dir} holds {', '.join(theirs)} that 'insight render' did not write, so nothing "
            "was changed; render another reports folder, move them away, or add --force to replace them."
        )


def quarto_template() -> dict:
    """The project template: the repository's _quarto.yml (in the working folder) if it is one,
    else the copy shipped in the package. A _quarto.yml written by a previous render, or one
    that is not a website project, is not a template and is passed over."""
    here = Path.cwd() / "_quarto.yml"
    if here.exists():
        text = here.read_text(encoding="utf-8")
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            config = None
        if (
            not text.startswith(GENERATED)
            and isinstance(config, dict)
            and (config.get("project") or {}).get("type") == "website"
        ):
            return config
    path = _templates_dir() / "quarto.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_quarto_project(
    reports_dir: Path,
    evaluations: list[Evaluation],
    national_year: int | None = None,
    skipped: list | None = None,
    force: bool = False,
    on_report=None,
) -> list[Path]:
    """Write the Quarto website project into ``<reports_dir>/_site_src``; returns the files written.

    The folder is render's own: replaced whole each time (so no page of an earlier render is left
    to be built), refused if it holds anything render did not write (unless ``force``). Its
    _quarto.yml sends the site to ``<reports_dir>/_site``. A notebook that cannot be read is left
    out (and added to ``skipped`` with the reason). ``on_report`` is called with each report's page
    source as soon as it is written (render makes its page and PDF meanwhile).

    Each executed notebook <evaluation>/<council>/<notebook>.ipynb gets a ``.qmd`` twin at the same
    place in the project (``notebook_to_qmd``): that is what Quarto renders, to HTML and to a Typst
    PDF. The notebooks and everything else in the reports folder are not touched.
    """
    config = quarto_template()  # first: the working folder may be inside the project folder replaced below
    project = reports_dir / PROJECT_DIR
    _prepare_out_dir(project, None, force)
    _remove_earlier_layout(reports_dir)
    written: list[Path] = []

    def put(rel: str, text: str) -> None:
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)

    _write_config(put, config, evaluations)
    summaries = {ev.slug: evaluation_summary(ev) for ev in evaluations}
    put("index.qmd", _home_qmd(evaluations, summaries))
    for ev in evaluations:
        written += _write_evaluation_pages(put, project, ev, summaries.get(ev.slug), skipped, on_report)
    written += _write_national_page(put, reports_dir, evaluations, national_year)
    return written


def _remove_earlier_layout(reports_dir: Path) -> None:
    """Earlier versions wrote the project at the top of the reports folder: remove those files, each
    only where it is provably render's (its first line, or the packaged filter byte for byte)."""
    if not _generated(reports_dir / "_quarto.yml"):
        return  # nothing of the earlier layout, or a _quarto.yml of the user's: touch nothing
    for name in PROJECT_FILES:
        path = reports_dir / name
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:300]
        except OSError:
            continue
        filter_copy = name == SAFE_FILTER and head == (_templates_dir() / "insight_safe.lua").read_text()[:300]
        if head.startswith(GENERATED) or WRITTEN in head or filter_copy:
            path.unlink(missing_ok=True)


def _write_config(put, config: dict, evaluations: list[Evaluation]) -> None:
    """The project's _quarto.yml (the template with the evaluations' menu, the site's CSS and safe filter)."""
    config.setdefault("project", {})["output-dir"] = "../_site"  # the site beside the project, in the reports folder
    # Quarto renders the shell pages and one report shell; the reports' pages are Pandoc's (quarto_shell)
    config["project"]["render"] = ["index.qmd", "national.qmd", "*/index.qmd", SHELL_PAGE]
    navbar = config.setdefault("website", {}).setdefault("navbar", {}).setdefault("left", [])
    # the evaluations in one menu, so the bar keeps to one line at 1280 px and the site title is whole
    menu = [{"href": f"{ev.slug}/index.qmd", "text": ev.title} for ev in reading_order(evaluations)]  # shown as text
    known = {old.get("href") for old in navbar if isinstance(old, dict)}
    menu = [item for item in menu if item["href"] not in known]
    if menu:
        navbar.insert(1 if navbar else 0, {"text": "Evaluations", "menu": menu})
    html_format = config.setdefault("format", {}).setdefault("html", {})
    css = html_format.get("css") or []
    css = [css] if isinstance(css, str) else list(css)
    if SITE_CSS not in css:
        html_format["css"] = [*css, SITE_CSS]
    put(SITE_CSS, f"/* {WRITTEN} */\n" + QUARTO_CSS)
    if is_synthetic_site(evaluations):
        config["website"]["announcement"] = {
            "content": f"**{text.quarto_md(text.SYNTHETIC_NOTICE)}**",
            "type": "warning",
            "dismissable": False,
            "position": "below-navbar",
        }
    filters = config.get("filters") or []
    if SAFE_FILTER not in filters:
        config["filters"] = [*filters, SAFE_FILTER]
    put(SAFE_FILTER, (_templates_dir() / "insight_safe.lua").read_text(encoding="utf-8"))
    put("_quarto.yml", GENERATED + "\n" + _yaml_dump(config))
    put(SHELL_PAGE, SHELL_SOURCE)
    put(str(Path(SHELL_PAGE).parent / "_metadata.yml"), _yaml_dump(REPORT_METADATA))


def _home_qmd(evaluations: list[Evaluation], summaries: dict) -> str:
    """The home page: each evaluation's answer in one sentence, its reports, the national summary."""
    home = [
        "---\n" + WRITTEN + "\n" + _yaml_dump({"title": "Do children come back after their case is closed?"}) + "---\n",
        "Each evaluation's answer across the councils, then every council's report, and a "
        "[national summary](national.qmd) comparing every council's re-referral rate with England's.\n",
    ]
    for ev in reading_order(evaluations):
        answer = summaries.get(ev.slug)
        n = len(ev.councils)
        reports = (
            (f"{n} council report{'s' if n != 1 else ''}" if n else "")
            if all(r.la_code.isdigit() for r in ev.councils)
            else f"{n} report{'s' if n != 1 else ''}"
        )
        if ev.national:
            reports = (
                "one report across "
                + (f"{len(ev.covers)} councils" if ev.covers else "all councils")
                + (f" and {reports}" if n else "")
            )
        home.append(f"## [{text.quarto_md(ev.title)}]({ev.slug}/index.qmd)\n")
        home.append(
            ("::: {.answer}\n" + text.quarto_md(answer.sentence) + "\n:::\n")
            if answer
            else (text.quarto_md(ev.description) + "\n" if ev.description else "")
        )
        home.append(f"[{text.quarto_md(reports[:1].upper() + reports[1:])}]({ev.slug}/index.qmd)\n")
    home.append("## [National summary](national.qmd)\n\nEvery council's 12-month re-referral rate against England's.\n")
    return "\n".join(home)


def _write_evaluation_pages(put, project: Path, ev: Evaluation, summary, skipped, on_report) -> list[Path]:
    """Each report's page source, and the evaluation's page (answer, method, a listing of its reports)."""
    written, items = _write_report_pages(put, project, ev, summary, skipped, on_report)
    put(f"{ev.slug}/councils.yml", _yaml_dump(items))
    body, front = [], {"title": text.quarto_md(ev.title)}
    if summary is not None:
        folder = project / ev.slug / "summary-figures"
        body.append(
            _fence(
                "{=html}",
                text.neutralise_raw_html(
                    summary_html(summary, lambda narrow: _write_summary_chart(summary, folder, narrow))
                ),
            )
        )
        written += sorted(folder.glob("*.png"))
        front["resources"] = ["summary-figures/*.png"]
        body.append("## About this evaluation\n")
    body.append(text.quarto_md(ev.description or "Choose a council to read its report.") + "\n")
    if ev.covers:
        body.append(
            f"The report across councils covers {len(ev.covers)} councils: "
            + ", ".join(text.quarto_md(f"{council_label(c)} ({c})") for c in ev.covers)
            + ".\n"
        )
    if summary is not None and summary.method:
        body.append("## Method\n\n" + "\n\n".join(text.quarto_md(m) for m in summary.method) + "\n")
    body.append("## Reports\n")  # Quarto puts the listing at the end of the page, under this heading
    front["listing"] = _listing(len(items))
    put(f"{ev.slug}/index.qmd", "---\n" + _yaml_dump(front) + "---\n\n" + "\n".join(body))
    return written


def _listing(rows: int) -> dict:
    """The evaluation page's listing of its reports: a table with meaningful columns, a filter when long."""
    return {
        "contents": "councils.yml",
        "type": "table",
        "fields": ["title", "la_code", "finding"],
        "field-display-names": {"title": "Council", "la_code": "Code", "finding": "Finding"},
        "sort": "title",
        "sort-ui": True,
        "filter-ui": rows > HOME_COUNCILS,
    }


def _write_report_pages(put, project: Path, ev: Evaluation, summary, skipped: list | None, on_report=None):
    """Each report's page source and its council's _metadata.yml; returns the files and the listing's rows.
    A notebook that cannot be read is left out (with its stale page source) so the others build."""
    written: list[Path] = []
    items = []
    for rep in list(ev.reports):
        page = project / ev.slug / rep.la_code / f"{rep.notebook.stem}.qmd"
        try:
            written += notebook_to_qmd(
                rep.notebook,
                dest=page,
                council=rep.council,
                failed=rep.status == "failed",
                title=rep.evaluation_title,
                error=rep.error,
                synthetic=rep.synthetic,
            )
        except InputError as exc:
            ev.reports.remove(rep)
            page.unlink(missing_ok=True)
            if skipped is not None:
                skipped.append((rep.notebook, str(exc)))
            continue
        items.append(
            {
                "title": text.quarto_md(rep.council),
                "la_code": text.quarto_md(rep.la_code),
                "finding": text.quarto_md(_listing_finding(rep, summary)),
                "path": f"{rep.la_code}/{rep.notebook.stem}.html",
            }
        )
        put(f"{ev.slug}/{rep.la_code}/_metadata.yml", _yaml_dump(REPORT_METADATA))  # the PDF: make_pdf
        if on_report is not None:
            on_report(page)
    return written, items


def _write_national_page(
    put, reports_dir: Path, evaluations: list[Evaluation], national_year: int | None
) -> list[Path]:
    """national.qmd: every council's re-referral rate against England's (or why it could not be built)."""
    from insightlib.analyses import national

    try:
        summary = national.build_national_summary(
            reports_dir, year=national_year, settings=council_settings(evaluations)
        )
    except InputError as exc:
        put(
            "national.qmd",
            "---\n" + WRITTEN + "\ntitle: National summary\n---\n\nThe national summary could not be built: "
            f"{text.quarto_md(exc)}\n",
        )
        return []
    written: list[Path] = []
    fig_dir = reports_dir / PROJECT_DIR / "national-figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "---\n"
        + WRITTEN
        + "\n"
        + _yaml_dump({"title": f"National summary: re-referrals within 12 months, {summary.year}"})
        + "---\n"
    ]
    for sec in summary.sections:
        # the national page's headings and paragraphs are plain text (the fallback escapes them for HTML):
        # every mark is escaped here, so a council's name or a year is shown as written, never as Markdown
        if sec.heading:
            parts.append(f"## {text.quarto_md(sec.heading)}\n")
        parts += [text.quarto_md(p) + "\n" for p in sec.paragraphs]
        for fig in sec.figures:
            (fig_dir / f"{fig.name}.png").write_bytes(fig.png)
            written.append(fig_dir / f"{fig.name}.png")
            parts.append(
                f'![{text.quarto_md(fig.title)}](national-figures/{fig.name}.png){{fig-alt="{_attribute(fig.alt)}"}}\n'
            )
        for _heading, table_html in sec.tables:
            parts.append(_fence("{=html}", text.neutralise_raw_html(table_html)))
    put("national.qmd", "\n".join(parts))
    return written


def _run_quarto(project: Path, builds: ReportBuilds, quarto: str, env: dict):
    """``quarto render`` of the site's own pages and the reports' shell (the reports' bodies and PDFs are
    being made meanwhile), then the reports' pages put into the shell; with each stage's time."""
    start = time.perf_counter()
    proc = subprocess.run([quarto, "render", "--no-execute"], cwd=project, env=env, capture_output=True, text=True)
    stages = {"quarto render": time.perf_counter() - start}
    pages, made, problems = builds.results()
    stages["report pages and PDFs still to finish (on a second core)"] = (
        time.perf_counter() - start - stages["quarto render"]
    )
    if proc.returncode == 0 and not problems:
        try:
            finish_reports(project.parent / "_site", project, pages)
        except QuartoFailed as exc:
            problems.append(str(exc))
        stages["report pages put into the site"] = time.perf_counter() - start - sum(stages.values())
    return proc, made, problems, stages


def render_quarto(
    reports_dir: Path,
    evaluations: list[Evaluation],
    quarto: str | None = None,
    *,
    national_year: int | None = None,
    force: bool = False,
) -> SiteResult:
    quarto = quarto or shutil.which("quarto")
    if not quarto:
        raise InsightError(INSTALL_QUARTO)
    check_project_ownership(reports_dir, force)
    skipped: list[tuple[Path, str]] = []
    env = {k: v for k, v in os.environ.items() if k in QUARTO_ENVIRONMENT or k.startswith("QUARTO_")}
    env["QUARTO_PYTHON"] = sys.executable
    project = reports_dir / PROJECT_DIR
    with ReportBuilds(quarto, env) as builds:  # each report's page and PDF begun as soon as its source is written
        start = time.perf_counter()
        written = write_quarto_project(
            reports_dir, evaluations, national_year=national_year, skipped=skipped, force=force, on_report=builds.submit
        )
        written_s = time.perf_counter() - start
        site = reports_dir / "_site"
        if site.is_dir():
            _mark_site(site)  # a failed render leaves a folder the HTML fallback may still replace
        proc, made, problems, stages = _run_quarto(project, builds, quarto, env)
    out = reports_dir / "_site"
    if proc.returncode != 0 or problems:
        for pdf in made:
            pdf.unlink(missing_ok=True)
        if out.is_dir():  # Quarto wrote it (the folder was insight's or absent): the fallback may replace it
            _mark_site(out)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:]) if proc.returncode else ""
        failure = QuartoFailed(tail or (problems[0] if problems else f"exit code {proc.returncode}"))
        failure.skipped = skipped
        raise failure
    for pdf in made:  # beside its page, named as the page links it
        dest = out / pdf.parent.relative_to(project) / pdf.name[1:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(pdf), dest)
    _mark_site(out)
    reports = [rep for ev in evaluations for rep in ev.reports]
    result = SiteResult(
        out_dir=out,
        index=out / "index.html",
        engine="quarto",
        reports=reports,
        pages=written,
        messages=[f"Rendered with Quarto ({quarto}); PDFs are beside each report."],
        stages={"project written": written_s, **stages},
    )
    _note_skipped(result, skipped)
    return result
