"""The website as plain HTML with nbconvert, where Quarto is not installed: code hidden, figures
as files with their alt text, tables tidied, readable on a phone.

Split from site.py.
"""

from __future__ import annotations

import base64
import html
import re
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

from insightlib.errors import InputError
from insightlib.report import text

from .site_pool import PagePool, render_workers, shared
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
    images = _set_images_aside(nb)
    body, _ = (exporter or _report_exporter()).from_notebook_node(_clean_notebook(nb))
    for token, data in images.items():
        body = body.replace(token, data, 1)
    return title, body


_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")


def _set_images_aside(nb) -> dict[str, str]:
    """Each output's image (and its drawing for a phone) swapped for a short token, put back after nbconvert.

    nbconvert parses and writes out the whole page once more (BeautifulSoup) after its template: a
    token of letters costs it nothing, a chart's 100,000 characters of base64 do. Only base64 is set
    aside, which the template's escaping and that parse leave exactly as it is, so the page's bytes are
    the same; any other value stays in place and goes the usual way."""
    images: dict[str, str] = {}
    nonce = secrets.token_hex(8)

    def aside(holder: dict, key: str) -> None:
        value = holder.get(key)
        if isinstance(value, str) and len(value) > 64 and _BASE64.fullmatch(value):
            token = f"insightimage{nonce}n{len(images)}x"
            images[token], holder[key] = value, token

    for cell in nb.cells:
        for out in cell.get("outputs", ()) if cell.cell_type == "code" else ():
            for mime in ("image/png", "image/jpeg"):
                aside(out.get("data", {}), mime)
            metadata = out.get("metadata", {})
            aside(metadata, "narrow")
            if isinstance(metadata.get("image/png"), dict):
                aside(metadata["image/png"], "narrow")
    return images


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
        """The page written and listed among the site's pages."""
        path = self.draw(rel, title, body, breadcrumbs, main_class)
        self.pages.append(path)
        return path

    def draw(self, rel: str, title: str, body: str, breadcrumbs=(), main_class: str = "") -> Path:
        """The page written (its figures beside it); the caller lists it."""
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
        return path


def render_html(
    reports_dir: Path,
    evaluations: list[Evaluation],
    out_dir: str | Path | None = None,
    *,
    national_year: int | None = None,
    force: bool = False,
    workers: int | None = None,
) -> SiteResult:
    """The fallback site, its pages drawn on ``workers`` processes (site_pool.render_workers)."""
    out = Path(out_dir) if out_dir is not None else reports_dir / "_site"
    _prepare_out_dir(out, reports_dir, force)
    shutil.copyfile(_templates_dir() / "site.css", out / "site.css")
    pages = _PageWriter(out, evaluations)
    reports = [(e, r) for e, ev in enumerate(evaluations) for r in range(len(ev.reports))]
    workers = render_workers(len(reports) + len(evaluations) + 1, workers)
    if workers > 1:
        _import_for_workers()
    shared = {"pages": pages, "evaluations": evaluations, "exporter": _report_exporter()}
    with PagePool(workers, shared) as pool:
        # the longest first: the national page, then each evaluation's page (drawn from every report
        # it lists; drawn again below in the rare case that one of its notebooks cannot be read)
        national = pool.submit(_national_task, reports_dir, national_year)
        listed = [pool.submit(_evaluation_task, e) for e in range(len(evaluations))]
        drawn = [pool.submit(_report_task, e, r) for e, r in reports]
        left_out = {(e, r): f.result() for (e, r), f in zip(reports, drawn)}
        evaluation_pages = [f.result() for f in listed]
        national_page = national.result()
    all_reports: list[Report] = []
    skipped: list[tuple[Path, str]] = []
    summaries: dict = {}
    for e, ev in enumerate(evaluations):
        kept = [rep for r, rep in enumerate(ev.reports) if left_out[(e, r)] is None]
        skipped += [(rep.notebook, left_out[(e, r)]) for r, rep in enumerate(ev.reports) if left_out[(e, r)]]
        pages.pages += [out / rep.href for rep in kept]
        all_reports += kept
        summaries[ev.slug], page = evaluation_pages[e]
        if len(kept) < len(ev.reports):  # drawn again without the reports left out
            ev.reports[:] = kept
            shutil.rmtree(out / ev.slug / "summary-figures", ignore_errors=True)
            summaries[ev.slug], page = _evaluation_page(pages, ev)
        pages.pages.append(page)
    if skipped:  # the national page reads each council's disclosure setting from the reports kept
        shutil.rmtree(out / "national-figures", ignore_errors=True)
        national_page = _national_page(pages, evaluations, reports_dir, national_year)
    pages.pages.append(national_page)
    index = pages.write("index.html", "Home", _home_html(evaluations, summaries))
    result = SiteResult(out_dir=out, index=index, engine="html", reports=all_reports, pages=pages.pages)
    _note_skipped(result, skipped)
    return result


def _import_for_workers() -> None:
    """What the national and evaluation pages draw with, imported once here rather than in each worker."""
    import insightlib.analyses.national  # noqa: F401
    import insightlib.report.summary  # noqa: F401
    import nbformat  # noqa: F401


def _national_task(reports_dir: Path, national_year: int | None) -> Path:
    return _national_page(shared()["pages"], shared()["evaluations"], reports_dir, national_year)


def _national_page(pages: _PageWriter, evaluations: list[Evaluation], reports_dir: Path, year: int | None) -> Path:
    body = _national_html(reports_dir, year, pages.out, council_settings(evaluations))
    return pages.draw("national.html", "National summary", body, breadcrumbs=[("Home", "index.html")])


def _evaluation_task(e: int) -> tuple:
    return _evaluation_page(shared()["pages"], shared()["evaluations"][e])


def _evaluation_page(pages: _PageWriter, ev: Evaluation) -> tuple:
    """(the evaluation's answer across councils, its page): drawn from every report it lists."""
    summary = evaluation_summary(ev)
    body = _evaluation_html(ev, summary, pages.out / ev.slug)
    return summary, pages.draw(f"{ev.slug}/index.html", ev.title, body, breadcrumbs=[("Home", "index.html")])


def _report_task(e: int, r: int) -> str | None:
    """Report ``r`` of evaluation ``e`` as a page with its downloads; None, or why it was left out (a
    notebook that cannot be read never stops the others)."""
    ev = shared()["evaluations"][e]
    rep = ev.reports[r]
    try:
        nb_title, body = render_report_html(rep.notebook, shared()["exporter"])
    except InputError as exc:
        return str(exc)
    pages = shared()["pages"]
    # the evaluation's own title says what this report asks ("Did Family Group
    # Conferences reduce re-referral?"); the notebook's heading is generic
    heading = f"<h1>{html.escape(rep.council)}: {html.escape(ev.title or nb_title)}</h1>"
    if rep.status == "failed":
        heading += f'<p class="notice" role="alert">{html.escape(failure_sentence(rep.error))}</p>'
    pages.draw(
        rep.href,
        f"{rep.council}: {ev.title}",
        f'{heading}<div class="report">{body}</div>',
        breadcrumbs=[("Home", "index.html"), (ev.title, f"{ev.slug}/index.html")],
        main_class="report-page",
    )
    for name in report_downloads(rep):
        shutil.copyfile(rep.notebook.parent / name, (pages.out / rep.href).parent / name)
    return None


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
