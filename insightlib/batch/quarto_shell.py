"""The Quarto route's report pages without a whole Quarto pass each: Quarto renders one shell page
(the site's head, navbar, banner, table of contents, PDF link and footer around placeholders), and
each report's body is made by Quarto's own Pandoc from the report's page source, through the same
safe filter and a filter giving the markup Quarto's filters would (``insight_html.lua``), then put
into the shell. The search index gets each report's sections as Quarto writes them.

Why: Quarto's Lua filter chain costs about 0.9 s of CPU a page even for an empty one, and Deno's
post-processing more, which made the Quarto render of the demo 3.8 times the fallback's time
(docs/publishing.md); plain Pandoc takes about 0.15 s a report.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from .quarto_pdf import TYPST_HEADER, QuartoFailed, make_pdf, quarto_tool
from .site_pages import _templates_dir

#: Where the shell page is rendered: a folder no evaluation can be named (names have no dot), at the
#: depth of every report (<evaluation>/<council>/<notebook>), so its links to site_libs hold for them.
SHELL_DIR = "insight.shell"
SHELL_PAGE = f"{SHELL_DIR}/page/report.qmd"
_TITLE, _PDF, _HEADING = "INSIGHTSHELLTITLE", "INSIGHTSHELLPDF", "INSIGHTSHELLHEADING"
_START, _CALLOUT, _END = "INSIGHTSHELLSTART", "INSIGHTSHELLCALLOUT", "INSIGHTSHELLEND"
#: The callouts a report page may hold (a failed report, a failed step); their markup is Quarto's own.
CALLOUTS = ("warning", "important")
SHELL_SOURCE = (
    "---\n"
    f"title: {_TITLE}\n"
    f"other-links: [{{text: PDF, href: {_PDF}.pdf, icon: file-pdf}}]\n"
    "---\n\n"
    f"## {_HEADING}\n\n{_START}\n\n"
    + "".join(f"::: {{.callout-{kind}}}\n{_CALLOUT}\n:::\n\n{_END}\n\n" for kind in CALLOUTS)
)


@dataclass
class Fragment:
    """A report's page made by Pandoc: its table of contents, body and title (HTML) and plain title."""

    toc: str
    body: str
    title: str
    pagetitle: str


def report_fragment(qmd: Path, quarto: str, env: dict) -> Fragment:
    """The report's body from its page source by Quarto's own Pandoc, with no file read but the
    source (no shortcode is resolved: plain Pandoc has none) and no environment beyond ``env``."""
    templates = _templates_dir()
    command = [
        *quarto_tool(quarto, "pandoc"),
        qmd.name,
        "--from",
        "markdown",
        "--to",
        "html5",
        "--standalone",
        "--template",
        str(templates / "insight_page.html"),
        "--toc",
        "--toc-depth",
        "3",
        "--section-divs",
        "--wrap",
        "none",
        "--lua-filter",
        str(templates / "insight_safe.lua"),
        "--lua-filter",
        str(templates / "insight_html.lua"),
    ]
    proc = subprocess.run(command, cwd=qmd.parent, env=env, capture_output=True, text=True, encoding="utf-8")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
        raise QuartoFailed(f"{qmd}: the page could not be made ({tail or f'exit code {proc.returncode}'})")
    if not all(
        mark in proc.stdout
        for mark in ("<!--insight-body-->\n", "<!--insight-title-->\n", "<!--insight-pagetitle-->\n")
    ):
        raise QuartoFailed(f"{qmd}: Quarto's Pandoc did not write the page's expected parts (see quarto_shell.py)")
    toc, rest = proc.stdout.split("<!--insight-body-->\n", 1)
    body, rest = rest.split("<!--insight-title-->\n", 1)
    body = body.replace(" />", ">")  # void elements as Quarto writes them (text has no bare ">": Pandoc escapes it)
    # as Quarto writes them: a section without its heading's classes, a table without Pandoc's full width
    body = re.sub(r'(<section id="[^"]*" class="level\d+) anchored" data-anchor-id="[^"]*">', r'\1">', body)
    body = re.sub(r'(<table class="[^"]*") style="width:100%;">', r"\1>", body)
    title, pagetitle = rest.split("<!--insight-pagetitle-->\n", 1)
    return Fragment(toc.strip(), body.strip(), title.strip(), pagetitle.strip())


class Shell:
    """The shell page Quarto rendered, cut at its placeholders."""

    def __init__(self, page: str):
        toc = re.search(r"<ul>\s*<li><a href=\"#" + _HEADING.lower() + r"\".*?</ul>", page, re.S)
        section = re.search(
            r"<section id=\"" + _HEADING.lower() + r"\".*?<p>" + _START + r"</p>(.*)<p>" + _END + r"</p>\s*</section>",
            page,
            re.S,
        )
        if not toc or not section or page.count(_TITLE) < 2 or f'href="{_PDF}.pdf"' not in page:
            raise QuartoFailed("Quarto's page did not have the expected layout for the reports (see quarto_shell.py)")
        self.head, self.middle, self.tail = (
            page[: toc.start()],
            page[toc.end() : section.start()],
            page[section.end() :],
        )
        self.callouts = {}
        for kind, markup in zip(CALLOUTS, section.group(1).split(f"<p>{_END}</p>")):
            before, _, after = markup.strip().partition(f"<p>{_CALLOUT}</p>")
            self.callouts[kind] = (before, after)

    def page(self, fragment: Fragment, pdf: str) -> str:
        """A report's page: the shell with the report's title, table of contents, PDF link and body."""
        toc = _quarto_toc(fragment.toc) if fragment.toc else "<ul>\n</ul>"

        def own(part: str) -> str:  # the shell's placeholders, never the report's text
            part = part.replace(f'<h1 class="title">{_TITLE}</h1>', f'<h1 class="title">{fragment.title}</h1>')
            return part.replace(_TITLE, fragment.pagetitle).replace(f'href="{_PDF}.pdf"', f'href="{html.escape(pdf)}"')

        return "".join([own(self.head), toc, own(self.middle), self._callouts(fragment.body), own(self.tail)])

    def _callouts(self, body: str) -> str:
        def swap(match: re.Match) -> str:
            before, after = self.callouts.get(match.group(1), self.callouts["warning"])
            return before + match.group(2).strip() + after

        return re.sub(r"<!--insight-callout-(\w+)-->(.*?)<!--/insight-callout-->", swap, body, flags=re.S)


def _quarto_toc(toc: str) -> str:
    """Pandoc's table of contents with the classes Quarto's scrolling table of contents needs."""
    first = [True]

    def link(match: re.Match) -> str:
        active = " active" if first[0] else ""
        first[0] = False
        return f'<a href="#{match.group(1)}" id="{match.group(2)}" class="nav-link{active}" data-scroll-target="#{match.group(1)}">'

    toc = re.sub(r'<a href="#([^"]*)" id="([^"]*)">', link, toc)
    return toc[:4] + toc[4:].replace("<ul>", '<ul class="collapse">')


class _Text(HTMLParser):
    """The text of a page's body, cut at each section, as Quarto's search index holds it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: list[list] = [["", "", []]]  # id, heading, text
        self._heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and attrs.get("id"):
            self.sections.append([attrs["id"], "", []])
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = True
        elif tag in ("p", "div", "li", "tr", "br", "table", "ul"):
            self.sections[-1][2].append("\n")

    def handle_endtag(self, tag):
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = False
            self.sections[-1][2].append("\n")

    def handle_data(self, data):
        if self._heading:
            self.sections[-1][1] += data
        self.sections[-1][2].append(data)


def search_entries(href: str, title: str, body: str) -> list[dict]:
    """Quarto's search.json entries for a page: its text before the first section, then each section."""
    parser = _Text()
    parser.feed(body)
    entries = []
    for ident, heading, chunks in parser.sections:
        words = re.sub(r"\n\s*\n+", "\n", "".join(chunks)).strip()
        if not ident and not words:
            continue
        target = f"{href}#{ident}" if ident else href
        entries.append({"objectID": target, "href": target, "title": title, "section": heading.strip(), "text": words})
    return entries


def finish_reports(site: Path, project: Path, pages: list[tuple[Path, Fragment]]) -> list[Path]:
    """Put every report's page into the rendered shell, beside it its figures, and into the search
    index; then remove the shell from the site. Returns the pages written."""
    shell_html = site / Path(SHELL_PAGE).with_suffix(".html")
    try:
        shell = Shell(shell_html.read_text(encoding="utf-8"))
    except OSError:
        raise QuartoFailed(f"Quarto did not render {SHELL_PAGE}") from None
    written, entries = [], []
    for qmd, fragment in pages:
        rel = qmd.relative_to(project).with_suffix(".html")
        dest = site / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(shell.page(fragment, f"{qmd.stem}.pdf"), encoding="utf-8")
        written.append(dest)
        figures = qmd.with_name(f"{qmd.stem}-figures")
        if figures.is_dir():
            shutil.copytree(figures, dest.with_name(figures.name), dirs_exist_ok=True)
        entries += search_entries(rel.as_posix(), html.unescape(fragment.pagetitle), fragment.body)
    shutil.rmtree(site / SHELL_DIR, ignore_errors=True)
    index = site / "search.json"
    if index.is_file():
        known = [e for e in json.loads(index.read_text(encoding="utf-8")) if not e["href"].startswith(SHELL_DIR + "/")]
        index.write_text(json.dumps(known + entries, indent=1, ensure_ascii=False), encoding="utf-8")
    return written


class ReportBuilds:
    """Every report's page body (Pandoc) and PDF (Pandoc and Typst), made on a second core from the moment
    its page source is written, while the rest of the project is written and Quarto renders the site's
    own pages. Use as a context manager; ``submit`` each report's page source, then ``results``."""

    def __init__(self, quarto: str, env: dict):
        self.quarto, self.env = quarto, env
        self._tmp = tempfile.TemporaryDirectory(prefix="insight-typst-")
        self.header = Path(self._tmp.name) / "header.typ"
        self.header.write_text(TYPST_HEADER, encoding="utf-8")
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._jobs: list = []

    def submit(self, qmd: Path) -> None:
        page = self._pool.submit(report_fragment, qmd, self.quarto, self.env)
        self._jobs.append((qmd, page, self._pool.submit(make_pdf, qmd, self.quarto, self.env, self.header)))

    def results(self) -> tuple[list[tuple[Path, Fragment]], list[Path], list[str]]:
        """The pages made, the PDFs made and a sentence for each that could not be made."""
        pages, pdfs, problems = [], [], []
        for qmd, page, pdf in self._jobs:
            for job, made in ((page, lambda value, qmd=qmd: pages.append((qmd, value))), (pdf, pdfs.append)):
                try:
                    made(job.result())
                except QuartoFailed as exc:
                    problems.append(str(exc))
        return pages, pdfs, problems

    def __enter__(self) -> ReportBuilds:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._tmp.cleanup()
