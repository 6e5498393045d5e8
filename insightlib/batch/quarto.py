"""The website as a Quarto project: a ``.qmd`` twin of every executed notebook (markdown and
outputs only, nothing to execute), listing pages, the project's _quarto.yml, and ``quarto render``.

Split from site.py.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
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


class QuartoFailed(RuntimeError):
    pass


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
#: Typst: text in table cells set ragged right, never justified into gappy words.
TYPST_HEADER = "#set par(justify: false)\n#show table.cell: set par(justify: false)\n#show table: set text(size: 9pt)\n"
#: The Lua filter that makes a report's PDF from its page source (after SAFE_FILTER): screen-only charts
#: left out, callouts boxed.
PDF_FILTER = "insight_pdf.lua"
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
) -> list[Path]:
    """Write the Quarto website project into ``<reports_dir>/_site_src``; returns the files written.

    The folder is render's own: replaced whole each time (so no page of an earlier render is left
    to be built), refused if it holds anything render did not write (unless ``force``). Its
    _quarto.yml sends the site to ``<reports_dir>/_site``. A notebook that cannot be read is left
    out (and added to ``skipped`` with the reason).

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
        written += _write_evaluation_pages(put, project, ev, summaries.get(ev.slug), skipped)
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


def _write_evaluation_pages(put, project: Path, ev: Evaluation, summary, skipped: list | None) -> list[Path]:
    """Each report's page source, and the evaluation's page (answer, method, a listing of its reports)."""
    # long: one pass writes each report's page and its listing row, which the evaluation's page then lists
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
        except InputError as exc:  # left out, with its stale page source, so the others build
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
        put(
            f"{ev.slug}/{rep.la_code}/_metadata.yml",
            _yaml_dump(
                {
                    "format": {"html": {"toc": True, "format-links": False}},  # the PDF: make_pdf
                    "execute": {"enabled": False, "echo": False},
                }
            ),
        )
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
    front["listing"] = {
        "contents": "councils.yml",
        "type": "table",
        "fields": ["title", "la_code", "finding"],
        "field-display-names": {"title": "Council", "la_code": "Code", "finding": "Finding"},
        "sort": "title",
        "sort-ui": True,
        "filter-ui": len(items) > HOME_COUNCILS,
    }
    put(f"{ev.slug}/index.qmd", "---\n" + _yaml_dump(front) + "---\n\n" + "\n".join(body))
    return written


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


def quarto_tool(quarto: str, name: str) -> list[str]:
    """The command for Quarto's own ``pandoc`` or ``typst`` (the versions its site is made with), run
    directly where Quarto ships them: ``quarto pandoc`` would start Quarto's Deno for every PDF."""
    exe = name + (".exe" if os.name == "nt" else "")
    tools = Path(quarto).resolve().parent / "tools"
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    for candidate in (tools / machine / exe, tools / exe):
        if candidate.is_file():
            return [str(candidate)]
    return [quarto, name]


def make_pdf(qmd: Path, quarto: str, env: dict, header: Path) -> Path:
    """One report's PDF, from the page source Quarto renders (``notebook_to_qmd``): Pandoc to Typst
    through the same safe filter (so text is text here too), then Typst, both Quarto's own, and
    neither with a file outside the report's folder (Typst's ``--root``) or an environment variable
    beyond ``env``. Written as ``_<stem>.pdf`` beside it (Quarto passes over ``_`` files); returns it.

    Why not Quarto's own Typst format: it renders each report a second time through its whole
    filter chain and Deno, which made PDFs 40% of the Quarto render (benchmarks/site_render.py)."""
    folder, typ, pdf = qmd.parent, qmd.with_name(f"_{qmd.stem}.typ"), qmd.with_name(f"_{qmd.stem}.pdf")
    templates = _templates_dir()
    steps = [
        [
            *quarto_tool(quarto, "pandoc"),
            qmd.name,
            "--from",
            "markdown",
            "--to",
            "typst",
            "--standalone",
            "--lua-filter",
            str(templates / "insight_safe.lua"),
            "--lua-filter",
            str(templates / PDF_FILTER),
            "--include-in-header",
            str(header),
            "--metadata",
            "papersize=a4",
            "--output",
            typ.name,
        ],
        [*quarto_tool(quarto, "typst"), "compile", "--root", ".", typ.name, pdf.name],
    ]
    try:
        for command in steps:
            proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
                raise QuartoFailed(f"{qmd}: the PDF could not be made ({tail or f'exit code {proc.returncode}'})")
    finally:
        typ.unlink(missing_ok=True)
    if not pdf.is_file():  # a tool that exits 0 without writing it is a failure too, never a missing link
        raise QuartoFailed(f"{qmd}: the PDF could not be made (no {pdf.name} was written)")
    return pdf


def _run_quarto_and_pdfs(project: Path, qmds: list[Path], quarto: str, env: dict):
    """``quarto render`` of the pages, with every report's PDF made on a second core meanwhile."""
    with tempfile.TemporaryDirectory(prefix="insight-typst-") as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        header = Path(tmp) / "header.typ"
        header.write_text(TYPST_HEADER, encoding="utf-8")
        jobs = [pool.submit(make_pdf, qmd, quarto, env, header) for qmd in qmds]
        proc = subprocess.run([quarto, "render", "--no-execute"], cwd=project, env=env, capture_output=True, text=True)
        made, problems = [], []
        for job in jobs:
            try:
                made.append(job.result())
            except QuartoFailed as exc:
                problems.append(str(exc))
    return proc, made, problems


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
    written = write_quarto_project(reports_dir, evaluations, national_year=national_year, skipped=skipped, force=force)
    site = reports_dir / "_site"
    if site.is_dir():
        _mark_site(site)  # a failed render leaves a folder the HTML fallback may still replace
    env = {k: v for k, v in os.environ.items() if k in QUARTO_ENVIRONMENT or k.startswith("QUARTO_")}
    env["QUARTO_PYTHON"] = sys.executable
    project = reports_dir / PROJECT_DIR
    qmds = [project / ev.slug / rep.la_code / f"{rep.notebook.stem}.qmd" for ev in evaluations for rep in ev.reports]
    proc, made, problems = _run_quarto_and_pdfs(project, qmds, quarto, env)
    out = reports_dir / "_site"
    if proc.returncode != 0 or problems:
        for pdf in made:
            pdf.unlink(missing_ok=True)
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
    )
    _note_skipped(result, skipped)
    return result
