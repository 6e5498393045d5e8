"""The website as plain HTML with nbconvert, where Quarto is not installed: code hidden, figures
as files with their alt text, tables tidied, readable on a phone.

Split from site.py.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from insightlib.errors import InputError
from insightlib.report import text

from .site_pages import (
    HOME_COUNCILS,
    SITE_TITLE,
    _clean_notebook,
    _note_skipped,
    _prepare_out_dir,
    _take_title,
    _templates_dir,
)
from .site_reports import (
    NATIONAL_DIR,
    Evaluation,
    Report,
    SiteResult,
    council_label,
    council_settings,
    evaluation_summary,
    failure_sentence,
    is_synthetic_site,
    reading_order,
    report_downloads,
    summary_html,
    summary_method_html,
    _write_summary_chart,
)

_DATA_IMG = re.compile(r'<img\s([^>]*?)src="data:image/(png|jpeg);base64,([^"]+)"([^>]*)>')
_FRAME = re.compile(r'<table[^>]*class="[^"]*dataframe[^"]*"[^>]*>.*?</table>', re.S)
_NUMBER = re.compile(r"^\s*[-+\u2212]?[\d,]*\.?\d+\s*(%|days?|points?)?\s*$|^\s*(c|x|u|z|<\d+)\s*$")


def _jinja():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_templates_dir())),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )


def _report_exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="classic",
        extra_template_paths=[str(_templates_dir())],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        anchor_link_text="",
    )
    exporter.template_file = "report_body.html.j2"
    exporter.register_filter("safe_html", text.safe_html)
    return exporter


def render_report_html(notebook: Path, exporter=None) -> tuple[str, str]:
    """(title, body HTML) of one executed notebook, without its code."""
    import nbformat

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook is the user's input problem
        raise InputError(f"{notebook}: not a readable notebook ({exc}).") from None
    title = _take_title(nb, notebook.stem.replace("_", " ").capitalize())
    body, _ = (exporter or _report_exporter()).from_notebook_node(_clean_notebook(nb))
    return title, body


def externalise_images(body: str, out: Path, page_rel: str) -> str:
    """Embedded images become files beside the page, each a link to itself: smaller pages, and on a
    phone a tap opens the chart full size (where the browser lets the reader zoom)."""
    stem = Path(page_rel).stem
    folder = f"{stem}-figures"
    count = 0

    def swap(m: re.Match) -> str:
        nonlocal count
        count += 1
        ext = "jpg" if m.group(2) == "jpeg" else "png"
        name = f"{folder}/figure-{count}.{ext}"
        path = out / Path(page_rel).parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(m.group(3)))
        return (
            f'<a class="figure-link" href="{name}" title="Open the chart full size">'
            f'<img {m.group(1)}src="{name}"{m.group(4)}></a>'
        )

    return _DATA_IMG.sub(swap, body)


def tidy_tables(body: str) -> str:
    """pandas tables as a reader wants them: no 0, 1, 2 ... row-number column, numbers right-aligned
    and words left-aligned."""

    def tidy(m: re.Match) -> str:
        table = m.group(0)
        heads = re.findall(r"<tbody>.*", table, re.S)
        row_heads = re.findall(r"<tr[^>]*>\s*<th[^>]*>([^<]*)</th>", heads[0]) if heads else []
        if row_heads and row_heads == [str(i) for i in range(len(row_heads))]:
            table = re.sub(
                r"(<tbody>.*)",
                lambda b: re.sub(r"(<tr[^>]*>)\s*<th[^>]*>\d+</th>", r"\1", b.group(1)),
                table,
                flags=re.S,
            )
            thead_end = table.find("</thead>")
            head = re.sub(r"(<tr[^>]*>)\s*<th[^>]*>\s*</th>", r"\1", table[:thead_end])
            table = head + table[thead_end:]
        return re.sub(
            r"<td>([^<]*)</td>",
            lambda c: (
                f'<td class="num">{c.group(1)}</td>'
                if _NUMBER.match(html.unescape(c.group(1)))
                else f"<td>{c.group(1)}</td>"
            ),
            table,
        )

    return _FRAME.sub(tidy, body)


class _PageWriter:
    """Writes every page of the fallback site through one template, with the site's folder and menu."""

    def __init__(self, out: Path, evaluations: list[Evaluation]):
        self.out, self.pages = out, []
        self.page = _jinja().get_template("page.html.j2")
        self.built = datetime.now(timezone.utc).strftime("%d %B %Y %H:%M UTC")
        self.nav = [{"slug": e.slug, "title": e.title} for e in reading_order(evaluations)]
        self.banner = text.SYNTHETIC_NOTICE if is_synthetic_site(evaluations) else ""

    def write(self, rel: str, title: str, body: str, breadcrumbs=(), main_class: str = "") -> Path:
        from markupsafe import Markup

        root = "../" * rel.count("/")
        body = tidy_tables(externalise_images(body, self.out, rel))
        if "figure-link" in body:
            hint = '<p class="hint">Tap a chart to open it full size.</p>'
            body = body.replace("</h1>", "</h1>" + hint, 1) if "</h1>" in body else hint + body
        page = self.page.render(
            title=title,
            site_title=SITE_TITLE,
            root=root,
            evaluations=self.nav,
            body=Markup(body),
            breadcrumbs=[(label, root + href) for label, href in breadcrumbs],
            built=self.built,
            main_class=main_class,
            banner=self.banner,
        )
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        self.pages.append(path)
        return path


def render_html(
    reports_dir: Path,
    evaluations: list[Evaluation],
    out_dir: str | Path | None = None,
    *,
    national_year: int | None = None,
    force: bool = False,
) -> SiteResult:
    out = Path(out_dir) if out_dir is not None else reports_dir / "_site"
    _prepare_out_dir(out, reports_dir, force)
    shutil.copyfile(_templates_dir() / "site.css", out / "site.css")
    pages = _PageWriter(out, evaluations)
    all_reports: list[Report] = []
    skipped: list[tuple[Path, str]] = []
    summaries: dict = {}
    exporter = _report_exporter()
    for ev in evaluations:
        all_reports += _write_reports(pages, ev, exporter, skipped)
        summaries[ev.slug] = evaluation_summary(ev)
        pages.write(
            f"{ev.slug}/index.html",
            ev.title,
            _evaluation_html(ev, summaries[ev.slug], out / ev.slug),
            breadcrumbs=[("Home", "index.html")],
        )
    national_body = _national_html(reports_dir, national_year, out, council_settings(evaluations))
    pages.write("national.html", "National summary", national_body, breadcrumbs=[("Home", "index.html")])
    index = pages.write("index.html", "Home", _home_html(evaluations, summaries))
    result = SiteResult(out_dir=out, index=index, engine="html", reports=all_reports, pages=pages.pages)
    _note_skipped(result, skipped)
    return result


def _write_reports(pages: _PageWriter, ev: Evaluation, exporter, skipped: list) -> list[Report]:
    """Each of an evaluation's reports as a page with its downloads; one broken notebook never stops the others."""
    written = []
    for rep in list(ev.reports):
        try:
            nb_title, body = render_report_html(rep.notebook, exporter)
        except InputError as exc:
            ev.reports.remove(rep)
            skipped.append((rep.notebook, str(exc)))
            continue
        written.append(rep)
        # the evaluation's own title says what this report asks ("Did Family Group
        # Conferences reduce re-referral?"); the notebook's heading is generic
        heading = f"<h1>{html.escape(rep.council)}: {html.escape(ev.title or nb_title)}</h1>"
        if rep.status == "failed":
            heading += f'<p class="notice" role="alert">{html.escape(failure_sentence(rep.error))}</p>'
        pages.write(
            rep.href,
            f"{rep.council}: {ev.title}",
            f'{heading}<div class="report">{body}</div>',
            breadcrumbs=[("Home", "index.html"), (ev.title, f"{ev.slug}/index.html")],
            main_class="report-page",
        )
        for name in report_downloads(rep):
            shutil.copyfile(rep.notebook.parent / name, (pages.out / rep.href).parent / name)
    return written


def _home_html(evaluations: list[Evaluation], summaries: dict) -> str:
    """The home page: each evaluation's answer, its councils (a link when there are many), the national summary."""
    sections = []
    for ev in reading_order(evaluations):
        n = len(ev.councils)
        kind = "council " if all(r.la_code.isdigit() for r in ev.councils) else ""  # area runs: "3 reports"
        count = f"{n} {kind}report{'s' if n != 1 else ''}" if n else ""
        if ev.national:
            count = (
                "One report across "
                + (f"{len(ev.covers)} councils" if ev.covers else "all councils")
                + (f", and {count}" if count else "")
            )
        items = "\n".join(_council_item(rep, prefix=rep.href) for rep in ev.national)
        if n <= HOME_COUNCILS:
            items += "\n".join(_council_item(rep, prefix=rep.href) for rep in ev.councils)
        more = (
            ""
            if n <= HOME_COUNCILS
            else f'<p><a href="{html.escape(ev.slug)}/index.html">Find a council among all {n}</a></p>'
        )
        answer = summaries.get(ev.slug)
        sections.append(
            f'<section class="evaluation"><h2><a href="{html.escape(ev.slug)}/index.html">'
            f"{html.escape(ev.title)}</a></h2>"
            + (
                f'<p class="answer">{html.escape(answer.sentence)}</p>'
                if answer
                else f"<p>{html.escape(ev.description)}</p>"
                if ev.description
                else ""
            )
            + f'<p class="status">{count}</p>'
            + (f'<ul class="cards">{items}</ul>' if items else "")
            + more
            + "</section>"
        )
    home = (
        "<h1>Do children come back after their case is closed?</h1>"
        '<p class="lede">Reports for each evaluation and council, and a <a href="national.html">national summary</a> '
        "comparing every council's re-referral rate with England's.</p>" + "\n".join(sections)
    )
    return home


def _evaluation_html(ev: Evaluation, summary=None, folder: Path | None = None) -> str:
    """An evaluation's page: its answer across councils first, then what it asks, its national report
    if any, every council's report, and the method of the summary for an analyst."""
    parts = [f"<h1>{html.escape(ev.title)}</h1>"]
    if summary is not None and folder is not None:
        parts.append(
            summary_html(summary, lambda narrow: _write_summary_chart(summary, folder / "summary-figures", narrow))
        )
        parts.append("<h2>About this evaluation</h2>")
    if ev.description:
        parts.append(f'<p class="lede">{html.escape(ev.description)}</p>')
    if ev.national:
        parts.append("<h2>The report across councils</h2>")
        parts.append(
            '<ul class="cards">'
            + "\n".join(_council_item(rep, prefix=f"{rep.la_code}/{rep.notebook.stem}.html") for rep in ev.national)
            + "</ul>"
        )
        if ev.covers:
            names = ", ".join(f"{html.escape(council_label(c))} ({html.escape(c)})" for c in ev.covers)
            parts.append(f"<p>It covers {len(ev.covers)} councils: {names}.</p>")
    if ev.councils:
        if ev.national:
            parts.append("<h2>Council reports</h2>")
        parts.append(
            f"<p>{len(ev.councils)} council report{'s' if len(ev.councils) != 1 else ''}. "
            "Choose a council to read its report.</p>"
        )
        parts.append(
            '<ul class="cards">'
            + "\n".join(_council_item(rep, prefix=f"{rep.la_code}/{rep.notebook.stem}.html") for rep in ev.councils)
            + "</ul>"
        )
    if summary is not None:
        parts.append(summary_method_html(summary))
    return "\n".join(parts)


def _council_item(rep: Report, prefix: str) -> str:
    status = ""
    cls = ""
    if rep.status == "failed":
        cls = ' class="failed"'
        status = '<br><span class="status">Did not finish: parts of this report are missing.</span>'
    code = "" if rep.la_code == NATIONAL_DIR else f' <span class="status">({html.escape(rep.la_code)})</span>'
    return f'<li{cls}><a href="{html.escape(prefix)}">{html.escape(rep.council)}</a>{code}{status}</li>'


def _national_html(reports_dir: Path, year: int | None, out: Path, settings: dict | None = None) -> str:
    from insightlib.analyses import national

    try:
        summary = national.build_national_summary(reports_dir, year=year, settings=settings)
    except InputError as exc:
        return (
            '<h1>National summary</h1><p class="notice">The national summary could not be built: '
            f"{html.escape(str(exc))}</p>"
        )
    folder = out / "national-figures"
    folder.mkdir(parents=True, exist_ok=True)

    def image_src(fig, narrow=False) -> str:
        name = f"{fig.name}{'-narrow' if narrow else ''}.png"
        (folder / name).write_bytes(fig.png_narrow if narrow and fig.png_narrow else fig.png)
        return f"national-figures/{name}"

    return f"<h1>National summary: re-referrals within 12 months, {summary.year}</h1>" + summary.html_fragment(
        image_src
    )
