"""The website leaders read: every executed report, a page per evaluation, and a national summary.

``render_site(reports_dir)`` reads ``<reports>/<evaluation>/<la_code>/<notebook>.ipynb`` (as
written by ``insight run``) and the ``results.json`` and ``manifest.json`` beside them, and
never re-executes a notebook.

* With Quarto on PATH it writes a Quarto website project into the reports folder (a
  ``_quarto.yml`` from the project template, listing pages, a ``_metadata.yml`` per council
  asking for HTML and a Typst PDF) and runs ``quarto render``.
* Without Quarto it builds the same site as plain HTML with nbconvert (code hidden, figures
  embedded with their alt text, tables styled, readable on a phone) and says how to install
  Quarto.

Either way the site is at ``<reports>/_site`` and its home page is ``SiteResult.index``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import yaml

from insightlib import reference
from insightlib.report import text
from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.report import tables
from insightlib.errors import InputError, InsightError

SITE_TITLE = "insight: do children come back?"
INSTALL_QUARTO = (
    "Quarto is not installed, so the website was built as plain HTML (no PDFs). For the full site "
    "with a PDF of every report, install Quarto from https://quarto.org/docs/get-started/ "
    "or with `conda install -c conda-forge quarto`, then run `insight render` again."
)
MARKER = ".insight-site"
NATIONAL_DIR = "national"  # the runner's folder for national-scope notebooks


@dataclass
class Report:
    """One executed notebook for one council."""

    evaluation: str
    evaluation_title: str
    la_code: str
    council: str
    notebook: Path
    results: Path | None
    status: str  # "ok", "failed" or "unknown" (no manifest)
    error: str | None = None
    synthetic: bool = False  # its results.json says the data were made by insight synth

    @property
    def href(self) -> str:
        """Path of the report page relative to the site root."""
        return f"{self.evaluation}/{self.la_code}/{self.notebook.stem}.html"

    def to_dict(self) -> dict:
        return {"evaluation": self.evaluation, "la_code": self.la_code, "council": self.council,
                "notebook": str(self.notebook), "status": self.status, "href": self.href}


@dataclass
class Evaluation:
    slug: str
    title: str
    description: str
    reports: list[Report]
    covers: list[str] = field(default_factory=list)  # councils a national-scope report covers

    @property
    def councils(self) -> list[Report]:
        return [r for r in self.reports if r.la_code != NATIONAL_DIR]

    @property
    def national(self) -> list[Report]:
        return [r for r in self.reports if r.la_code == NATIONAL_DIR]


@dataclass
class SiteResult:
    """What was built: where, with which engine, and what to tell the user."""

    out_dir: Path
    index: Path
    engine: str  # "quarto" or "html"
    reports: list[Report]
    pages: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # notebooks that could not be read, left out

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "index": str(self.index), "engine": self.engine,
                "reports": [r.to_dict() for r in self.reports], "pages": [str(p) for p in self.pages],
                "messages": self.messages, "skipped": [str(p) for p in self.skipped]}


# --- finding what was run -------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def report_downloads(rep: Report) -> list[str]:
    """Tables a notebook offers for download: CSV files beside it that its results.json lists under "downloads"."""
    if rep.results is None:
        return []
    names = _read_json(rep.results).get("downloads") or []
    return [n for n in names if isinstance(n, str) and n == Path(n).name and n.endswith(".csv")
            and (rep.notebook.parent / n).is_file()]


def council_label(la_code: str, covers: list[str] | None = None) -> str:
    """A report's council in words. A report across councils says how many it covers ("6 councils"):
    "England" only when it covers every one of the 153."""
    if la_code == NATIONAL_DIR:
        if covers and set(reference.local_authorities()["la_code"]) <= set(covers):
            return "England (all councils)"
        if covers:
            return f"{len(covers)} council{'' if len(covers) == 1 else 's'}"
        return "All councils in the data"
    return reference.council_name(la_code)


def discover(reports_dir: str | Path) -> list[Evaluation]:
    """The evaluations and executed notebooks under ``reports_dir``, in a stable order."""
    root = Path(reports_dir)
    if not root.is_dir():
        raise InputError(f"{root}: no reports folder; run 'insight run evaluations/<name>.yml' first.")
    by_eval: dict[str, list[Report]] = {}
    meta: dict[str, dict] = {}
    for nb in sorted(root.glob("*/*/*.ipynb")):
        rel = nb.relative_to(root)
        if any(part.startswith(("_", ".")) for part in rel.parts) or "checkpoint" in nb.name:
            continue
        evaluation, la_code = rel.parts[0], rel.parts[1]
        manifest = _read_json(nb.parent / "manifest.json")
        results = nb.parent / "results.json"
        title = manifest.get("title") or meta.get(evaluation, {}).get("title") or _titleise(evaluation)
        meta.setdefault(evaluation, {"title": title, "description": manifest.get("description", "")})
        by_eval.setdefault(evaluation, []).append(Report(
            evaluation=evaluation,
            evaluation_title=title,
            la_code=la_code,
            council=manifest.get("area") or council_label(la_code),  # an area run names its area
            notebook=nb,
            results=results if results.exists() else None,
            status=manifest.get("status", "unknown"),
            error=manifest.get("error"),
            synthetic=results.exists() and _read_json(results).get("synthetic") is True,
        ))
    evaluations = []
    for slug in sorted(by_eval):
        reports = sorted(by_eval[slug], key=lambda r: (r.la_code != NATIONAL_DIR, r.council, r.notebook.name))
        run = _read_json(root / slug / "run.json").get("evaluation")
        run = run if isinstance(run, dict) else {}
        title = run.get("title") or meta[slug]["title"]
        description = " ".join(str(run.get("description") or meta[slug]["description"] or "").split())
        for rep in reports:
            rep.evaluation_title = title
        covers = _covered_councils(reports, run)
        for rep in reports:
            if rep.la_code == NATIONAL_DIR:
                rep.council = council_label(NATIONAL_DIR, covers)
        evaluations.append(Evaluation(slug, title, description, reports, covers))
    return evaluations


def _covered_councils(reports: list[Report], run: dict) -> list[str]:
    """The councils a national-scope report covers, from its results.json (never from HTML).

    Looked for, in order: a top-level "councils" list, the parameters' "councils" list, the
    keys of the parameters' "adoption" dates (the programme notebook), the evaluation's
    own council list."""
    for rep in reports:
        if rep.la_code != NATIONAL_DIR or rep.results is None:
            continue
        res = _read_json(rep.results)
        params = res.get("parameters") or {}
        for found in (res.get("councils"), params.get("councils"), params.get("adoption")):
            if isinstance(found, dict):
                found = list(found)
            if isinstance(found, list) and found:
                return sorted({str(c) for c in found}, key=council_label)
        if isinstance(run.get("councils"), list) and run["councils"]:
            return sorted({str(c) for c in run["councils"]}, key=council_label)
    return []


def disclosure_setting(rep: Report) -> tuple[int, int]:
    """(threshold, rounding base or 0) a report was controlled with, from its manifest (else results.json)."""
    for path in (rep.notebook.parent / "manifest.json", rep.results):
        params = (_read_json(path) if path is not None else {}).get("parameters") or {}
        if "disclosure_threshold" in params:
            threshold, rounding = params.get("disclosure_threshold"), params.get("rounding")
            try:
                return int(threshold), int(rounding or 0)
            except (TypeError, ValueError):
                break
    return DISCLOSURE_THRESHOLD, 0


def _settings_by_council(evaluations: list[Evaluation]) -> dict[str, list[tuple[Report, tuple[int, int]]]]:
    by_council: dict[str, list[tuple[Report, tuple[int, int]]]] = {}
    for ev in evaluations:
        for rep in ev.reports:
            setting = disclosure_setting(rep)
            for la in (ev.covers if rep.la_code == NATIONAL_DIR else [rep.la_code]):
                by_council.setdefault(la, []).append((rep, setting))
    return by_council


def council_settings(evaluations: list[Evaluation]) -> dict[str, tuple[int, int]]:
    """Each council's strictest (threshold, rounding) on the site: the national page shows it at that."""
    return {la: max(s for _r, s in items) for la, items in _settings_by_council(evaluations).items()}


def one_disclosure_per_council(evaluations: list[Evaluation]) -> list[tuple[Path, str]]:
    """Leave out every report of a council made with weaker disclosure control than another on the site.

    Two evaluations of the same children with different thresholds (or one rounding, one not)
    undo the stricter: a count hidden at threshold 10 is printed by the report at threshold 5,
    and the other's secondary suppression is differenced away. So a site publishes each council
    at one setting, its strictest (highest threshold, then coarsest rounding); a report across
    councils counts for each council it covers. Returns (notebook, reason) for each left out."""
    by_council = _settings_by_council(evaluations)
    weaker: dict[Path, tuple[Report, str, tuple, tuple, Report]] = {}
    for la, items in sorted(by_council.items()):
        strictest, strict_rep = max(((s, r) for r, s in items), key=lambda sr: sr[0])
        for rep, setting in items:
            if setting < strictest and rep.notebook not in weaker:
                weaker[rep.notebook] = (rep, la, setting, strictest, strict_rep)
    left_out = []
    for ev in evaluations:
        for rep in list(ev.reports):
            if rep.notebook not in weaker:
                continue
            _rep, la, (t, r), (st, sr), strict_rep = weaker[rep.notebook]
            ev.reports.remove(rep)
            want = f"disclosure_threshold: {st}" + (f" and rounding: {sr}" if sr else "")
            had = f"threshold {t}" + (f", rounding {r}" if r else ", no rounding")
            left_out.append((rep.notebook, (
                f"{rep.evaluation}/{rep.la_code}: made with {had}, but {strict_rep.evaluation} publishes "
                f"{council_label(la)} with {st}" + (f", rounding {sr}" if sr else "") + "; a count hidden in one "
                f"could be worked out from the other, so a site shows each council at one setting. "
                f"Set {want} in its evaluation file and run it again.")))
    return left_out


def _titleise(slug: str) -> str:
    return slug.replace("-", " ").replace("_", " ").strip().capitalize()


# --- what a failed report says ---------------------------------------------------------------

#: The one sentence a report that did not finish shows at its top (both routes), by what went wrong.
#: The error itself (exception, traceback, papermill's banner) is never published: it may quote data.
FAILURE_SENTENCES = {
    "validation": "This report could not be made because the council's data failed validation: the analyst "
                  "should correct the rows named by 'insight validate' and then run 'insight run' again.",
    "timeout": "This report stopped because one step took longer than the time limit, so parts of it are "
               "missing: the analyst should run 'insight run' again with a longer --cell-timeout.",
    "kernel": "This report stopped because the program running it failed, so parts of it are missing: "
              "the analyst should run 'insight run' again.",
    "step": "This report stopped part-way because one step of the analysis failed, so parts of it are "
            "missing: the analyst should open the executed notebook, fix the cause and run 'insight run' again.",
}
#: Where a step of a report did not finish (the error output's place on the page).
STEP_FAILED = "This part of the report is missing because a step of the analysis did not finish."


#: The order a leader reads the evaluations in: the basic question first, then what changed it.
READING_ORDER = ("rereferral", "intervention_effect", "programme_evaluation")


def reading_order(evaluations: list[Evaluation]) -> list[Evaluation]:
    """Evaluations as the home page and the navigation list them: do children come back, then did an
    intervention change it, then did a programme, then anything else (each by title)."""
    def key(ev: Evaluation):
        kinds = {rep.notebook.stem for rep in ev.reports}
        rank = min((READING_ORDER.index(k) for k in kinds if k in READING_ORDER), default=len(READING_ORDER))
        return rank, ev.title
    return sorted(evaluations, key=key)


def is_synthetic_site(evaluations: list[Evaluation]) -> bool:
    """A site with any report of synthetic data says so on every page (a screenshot of any page
    must not pass for a real council's figures)."""
    return any(rep.synthetic for ev in evaluations for rep in ev.reports)


def failure_sentence(error: str | None) -> str:
    """The plain sentence for a failed report, from its manifest's error (never the error's text)."""
    error = (error or "").lower()
    if error.startswith("data failed validation"):
        return FAILURE_SENTENCES["validation"]
    if "longer than the limit" in error:
        return FAILURE_SENTENCES["timeout"]
    if error.startswith(("kernel failed", "worker failed")):
        return FAILURE_SENTENCES["kernel"]
    return FAILURE_SENTENCES["step"]


# --- each evaluation's answer across councils ---------------------------------------------------


def evaluation_summary(ev: Evaluation):
    """The evaluation's answer across its councils (insightlib.report.summary), or None; from the
    results.json of every report that finished, never from HTML."""
    from insightlib.report.summary import summarise

    done = [rep for rep in ev.reports if rep.status != "failed" and rep.results is not None]
    if not done:
        return None
    kinds = {rep.notebook.stem for rep in done}
    if len(kinds) != 1:
        return None
    try:
        return summarise(kinds.pop(), [(rep.la_code, rep.council, _read_json(rep.results)) for rep in done],
                         title=ev.title)
    except (InputError, KeyError, TypeError, ValueError):  # a results.json from another version: no summary
        return None


def summary_html(summary, image_src) -> str:
    """The summary as HTML for both routes: the answer, the forest plot (narrow drawing for phones), the table.
    ``image_src(narrow)`` writes the chart and gives its address."""
    parts = [f'<p class="answer">{html.escape(summary.sentence)}</p>']
    parts += [f"<p>{html.escape(p)}</p>" for p in summary.paragraphs]
    if summary.chart is not None:
        wide, narrow = html.escape(image_src(False)), html.escape(image_src(True))
        parts.append(f'<figure class="summary-chart"><a class="figure-link" href="{wide}" title="Open the chart full size">'
                     f'<picture><source media="(max-width: 40rem)" srcset="{narrow}">'
                     f'<img src="{wide}" alt="{html.escape(summary.chart.alt)}"></picture></a></figure>')
    parts.append(summary.table_html())
    return "\n".join(parts)


def summary_method_html(summary) -> str:
    return "<h2>Method</h2>" + "".join(f"<p>{html.escape(m)}</p>" for m in summary.method) if summary.method else ""


def _listing_finding(rep: Report, summary) -> str:
    """A council's row in its evaluation's listing: its own estimate, or that the report did not finish."""
    if rep.status == "failed":
        return "Did not finish: parts of this report are missing."
    return (summary.finding(rep.la_code) if summary is not None else "") or "Read the report"


def _write_summary_chart(summary, folder: Path, narrow: bool) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{summary.chart.name}{'-narrow' if narrow else ''}.png"
    (folder / name).write_bytes(summary.chart.png_narrow if narrow else summary.chart.png)
    return f"{folder.name}/{name}"


# --- the entry point --------------------------------------------------------------------------


def render_site(reports_dir: str | Path, out_dir: str | Path | None = None, *, engine: str | None = None,
                national_year: int | None = None, force: bool = False) -> SiteResult:
    """Build the website from executed notebooks. ``engine`` forces "quarto" or "html" (default: Quarto if on PATH).

    Nothing render did not write is replaced (a user's _quarto.yml, index.qmd or site folder)
    unless ``force``."""
    reports_dir = Path(reports_dir)
    evaluations = discover(reports_dir)
    if not evaluations:
        raise InputError(f"{reports_dir}: no executed notebooks found (expected <evaluation>/<council>/<notebook>.ipynb); "
                         "run 'insight run evaluations/<name>.yml' first.")
    weaker = one_disclosure_per_council(evaluations)
    evaluations = [ev for ev in evaluations if ev.reports]
    quarto = shutil.which("quarto")
    if engine == "quarto" and not quarto:
        raise InsightError("quarto is not on PATH. " + INSTALL_QUARTO)
    if (engine or ("quarto" if quarto else "html")) == "quarto":
        if out_dir is not None and Path(out_dir).resolve() != (reports_dir / "_site").resolve():
            raise InputError("With Quarto the site is always written to <reports>/_site (set in _quarto.yml).")
        try:
            result = render_quarto(reports_dir, evaluations, quarto, national_year=national_year, force=force)
        except QuartoFailed as exc:
            result = render_html(reports_dir, evaluations, out_dir, national_year=national_year, force=force)
            result.messages.insert(0, f"quarto render failed ({exc}); built the plain HTML site instead.")
            _note_skipped(result, getattr(exc, "skipped", []))
        _note_skipped(result, weaker)
        return result
    result = render_html(reports_dir, evaluations, out_dir, national_year=national_year, force=force)
    result.messages.append(INSTALL_QUARTO)
    _note_skipped(result, weaker)
    return result


# --- plain HTML fallback ----------------------------------------------------------------------


def _templates_dir() -> Path:
    return Path(str(resources.files("insightlib") / "templates"))


def _jinja():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(_templates_dir())),
                              autoescape=jinja2.select_autoescape(["html", "j2"]), keep_trailing_newline=True)


def _owns_site(out: Path, reports_dir: Path | None = None) -> bool:
    """True when ``out`` may be replaced: absent, empty, or built by insight render (its marker file,
    or a Quarto site beside a _quarto.yml that render itself wrote, from before the marker)."""
    if not out.exists():
        return True
    if not out.is_dir():
        return False
    if (out / MARKER).exists() or not any(out.iterdir()):
        return True
    return (out / "site_libs").exists() and reports_dir is not None and _generated(reports_dir / "_quarto.yml")


def _prepare_out_dir(out: Path, reports_dir: Path | None = None, force: bool = False) -> None:
    if out.exists():
        if not (force or _owns_site(out, reports_dir)):
            raise InputError(f"{out} holds files that 'insight render' did not write, so it was left as it is; "
                             "move them away, or run 'insight render --force' to replace that folder.")
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    out.mkdir(parents=True)
    _mark_site(out)


def _mark_site(out: Path) -> None:
    (out / MARKER).write_text("Built by insight render; the whole folder is replaced on each render.\n")


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


def _clean_notebook(nb):
    """What no reader should see: code, warnings on stderr, parameter cells, cells tagged remove-*,
    papermill's "An Exception was encountered" banner and any traceback."""
    cells = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & {"remove-cell", "remove_cell", "injected-parameters", "parameters", "papermill-error-cell-tag"}:
            continue
        if cell.cell_type == "code":
            if tags & {"remove-output", "remove_output"}:
                cell.outputs = []
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
            for o in cell.outputs:
                if o.get("output_type") == "error":  # the template says it in a sentence; no traceback kept
                    o["traceback"], o["evalue"] = [], ""
            cell.source = ""  # never ship code, even where a template would show it
        cells.append(cell)
    nb.cells = cells
    return nb


def _take_title(nb, fallback: str) -> str:
    """The notebook's first top-level heading, removed from the body (the page shows it as its h1)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if m:
                cell.source = (cell.source[: m.start()] + cell.source[m.end():]).strip()
                return m.group(1).strip()
    return fallback


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


#: On the home page an evaluation lists its councils only when there are this few; else a link.
HOME_COUNCILS = 12
_DATA_IMG = re.compile(r'<img\s([^>]*?)src="data:image/(png|jpeg);base64,([^"]+)"([^>]*)>')
_FRAME = re.compile(r'<table[^>]*class="[^"]*dataframe[^"]*"[^>]*>.*?</table>', re.S)
_NUMBER = re.compile(r"^\s*[-+\u2212]?[\d,]*\.?\d+\s*(%|days?|points?)?\s*$|^\s*(c|x|u|z|<\d+)\s*$")


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
        return (f'<a class="figure-link" href="{name}" title="Open the chart full size">'
                f'<img {m.group(1)}src="{name}"{m.group(4)}></a>')

    return _DATA_IMG.sub(swap, body)


def tidy_tables(body: str) -> str:
    """pandas tables as a reader wants them: no 0, 1, 2 ... row-number column, numbers right-aligned
    and words left-aligned."""

    def tidy(m: re.Match) -> str:
        table = m.group(0)
        heads = re.findall(r"<tbody>.*", table, re.S)
        row_heads = re.findall(r"<tr[^>]*>\s*<th[^>]*>([^<]*)</th>", heads[0]) if heads else []
        if row_heads and row_heads == [str(i) for i in range(len(row_heads))]:
            table = re.sub(r"(<tbody>.*)", lambda b: re.sub(r"(<tr[^>]*>)\s*<th[^>]*>\d+</th>", r"\1", b.group(1)),
                           table, flags=re.S)
            thead_end = table.find("</thead>")
            head = re.sub(r"(<tr[^>]*>)\s*<th[^>]*>\s*</th>", r"\1", table[:thead_end])
            table = head + table[thead_end:]
        return re.sub(r"<td>([^<]*)</td>",
                      lambda c: f'<td class="num">{c.group(1)}</td>' if _NUMBER.match(html.unescape(c.group(1)))
                      else f"<td>{c.group(1)}</td>", table)

    return _FRAME.sub(tidy, body)


def render_html(reports_dir: Path, evaluations: list[Evaluation], out_dir: str | Path | None = None, *,
                national_year: int | None = None, force: bool = False) -> SiteResult:
    out = Path(out_dir) if out_dir is not None else reports_dir / "_site"
    _prepare_out_dir(out, reports_dir, force)
    env = _jinja()
    page = env.get_template("page.html.j2")
    built = datetime.now(timezone.utc).strftime("%d %B %Y %H:%M UTC")
    shutil.copyfile(_templates_dir() / "site.css", out / "site.css")
    pages: list[Path] = []
    nav = [{"slug": e.slug, "title": e.title} for e in reading_order(evaluations)]
    banner = text.SYNTHETIC_NOTICE if is_synthetic_site(evaluations) else ""

    def write(rel: str, title: str, body: str, breadcrumbs=(), main_class: str = "") -> Path:
        from markupsafe import Markup

        depth = rel.count("/")
        root = "../" * depth
        body = tidy_tables(externalise_images(body, out, rel))
        if "figure-link" in body:
            hint = '<p class="hint">Tap a chart to open it full size.</p>'
            body = body.replace("</h1>", "</h1>" + hint, 1) if "</h1>" in body else hint + body
        text = page.render(title=title, site_title=SITE_TITLE, root=root, evaluations=nav, body=Markup(body),
                           breadcrumbs=[(label, root + href) for label, href in breadcrumbs], built=built,
                           main_class=main_class, banner=banner)
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        pages.append(path)
        return path

    all_reports: list[Report] = []
    skipped: list[tuple[Path, str]] = []
    summaries: dict = {}
    exporter = _report_exporter()
    for ev in evaluations:
        for rep in list(ev.reports):
            try:
                nb_title, body = render_report_html(rep.notebook, exporter)
            except InputError as exc:  # one broken notebook never stops the others' pages
                ev.reports.remove(rep)
                skipped.append((rep.notebook, str(exc)))
                continue
            all_reports.append(rep)
            # the evaluation's own title says what this report asks ("Did Family Group
            # Conferences reduce re-referral?"); the notebook's heading is generic
            heading = f"<h1>{html.escape(rep.council)}: {html.escape(ev.title or nb_title)}</h1>"
            if rep.status == "failed":
                heading += f'<p class="notice" role="alert">{html.escape(failure_sentence(rep.error))}</p>'
            write(rep.href, f"{rep.council}: {ev.title}", f'{heading}<div class="report">{body}</div>',
                  breadcrumbs=[("Home", "index.html"), (ev.title, f"{ev.slug}/index.html")], main_class="report-page")
            for name in report_downloads(rep):
                shutil.copyfile(rep.notebook.parent / name, (out / rep.href).parent / name)
        summaries[ev.slug] = evaluation_summary(ev)
        write(f"{ev.slug}/index.html", ev.title, _evaluation_html(ev, summaries[ev.slug], out / ev.slug),
              breadcrumbs=[("Home", "index.html")])

    national_body = _national_html(reports_dir, national_year, out, council_settings(evaluations))
    write("national.html", "National summary", national_body, breadcrumbs=[("Home", "index.html")])

    sections = []
    for ev in reading_order(evaluations):
        n = len(ev.councils)
        kind = "council " if all(r.la_code.isdigit() for r in ev.councils) else ""  # area runs: "3 reports"
        count = (f"{n} {kind}report{'s' if n != 1 else ''}" if n else "")
        if ev.national:
            count = "One report across " + (f"{len(ev.covers)} councils" if ev.covers else "all councils") + \
                (f", and {count}" if count else "")
        items = "\n".join(_council_item(rep, prefix=rep.href) for rep in ev.national)
        if n <= HOME_COUNCILS:
            items += "\n".join(_council_item(rep, prefix=rep.href) for rep in ev.councils)
        more = "" if n <= HOME_COUNCILS else \
            f'<p><a href="{html.escape(ev.slug)}/index.html">Find a council among all {n}</a></p>'
        answer = summaries.get(ev.slug)
        sections.append(f'<section class="evaluation"><h2><a href="{html.escape(ev.slug)}/index.html">'
                        f"{html.escape(ev.title)}</a></h2>"
                        + (f'<p class="answer">{html.escape(answer.sentence)}</p>' if answer else
                           f"<p>{html.escape(ev.description)}</p>" if ev.description else "")
                        + f'<p class="status">{count}</p>'
                        + (f'<ul class="cards">{items}</ul>' if items else "") + more + "</section>")
    home = ('<h1>Do children come back after their case is closed?</h1>'
            '<p class="lede">Reports for each evaluation and council, and a <a href="national.html">national summary</a> '
            "comparing every council's re-referral rate with England's.</p>" + "\n".join(sections))
    index = write("index.html", "Home", home)
    result = SiteResult(out_dir=out, index=index, engine="html", reports=all_reports, pages=pages)
    _note_skipped(result, skipped)
    return result


def _note_skipped(result: SiteResult, skipped: list[tuple[Path, str]]) -> None:
    for notebook, reason in skipped:
        result.skipped.append(notebook)
        result.messages.append(f"Left out of the site (run its evaluation again to rebuild it): {reason}")


def _evaluation_html(ev: Evaluation, summary=None, folder: Path | None = None) -> str:
    """An evaluation's page: its answer across councils first, then what it asks, its national report
    if any, every council's report, and the method of the summary for an analyst."""
    parts = [f"<h1>{html.escape(ev.title)}</h1>"]
    if summary is not None and folder is not None:
        parts.append(summary_html(summary, lambda narrow: _write_summary_chart(summary, folder / "summary-figures", narrow)))
        parts.append("<h2>About this evaluation</h2>")
    if ev.description:
        parts.append(f'<p class="lede">{html.escape(ev.description)}</p>')
    if ev.national:
        parts.append("<h2>The report across councils</h2>")
        parts.append('<ul class="cards">' + "\n".join(
            _council_item(rep, prefix=f"{rep.la_code}/{rep.notebook.stem}.html") for rep in ev.national) + "</ul>")
        if ev.covers:
            names = ", ".join(f"{html.escape(council_label(c))} ({html.escape(c)})" for c in ev.covers)
            parts.append(f"<p>It covers {len(ev.covers)} councils: {names}.</p>")
    if ev.councils:
        if ev.national:
            parts.append("<h2>Council reports</h2>")
        parts.append(f"<p>{len(ev.councils)} council report{'s' if len(ev.councils) != 1 else ''}. "
                     "Choose a council to read its report.</p>")
        parts.append('<ul class="cards">' + "\n".join(
            _council_item(rep, prefix=f"{rep.la_code}/{rep.notebook.stem}.html") for rep in ev.councils) + "</ul>")
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
        return ("<h1>National summary</h1><p class=\"notice\">The national summary could not be built: "
                f"{html.escape(str(exc))}</p>")
    folder = out / "national-figures"
    folder.mkdir(parents=True, exist_ok=True)

    def image_src(fig, narrow=False) -> str:
        name = f"{fig.name}{'-narrow' if narrow else ''}.png"
        (folder / name).write_bytes(fig.png_narrow if narrow and fig.png_narrow else fig.png)
        return f"national-figures/{name}"

    return (f"<h1>National summary: re-referrals within 12 months, {summary.year}</h1>"
            + summary.html_fragment(image_src))


# --- Quarto -----------------------------------------------------------------------------------


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _plain_text(value: str) -> str:
    """A plain-text output as escaped lines (a Pandoc line block), never a code block: Quarto
    resolves shortcodes inside code blocks."""
    lines = [line for line in value.rstrip().splitlines()]
    if not any(line.strip() for line in lines):
        return ""
    return "::: {.output-text}\n" + "\n".join(f"| {text.quarto_md(line)}" if line.strip() else "|" for line in lines) + "\n:::\n"


def _attribute(value: str) -> str:
    """Text for a Pandoc attribute value (alt text): one line, no quote or backslash, and no brace
    (Quarto reads shortcodes inside attributes, and an unbalanced one there swallows the rest of
    the page), so braces become parentheses."""
    value = " ".join(str(value).split()).replace("\\", "/").replace('"', "'")
    return value.replace("{", "(").replace("}", ")")


def _fence(kind: str, body: str) -> str:
    ticks = "````" if "```" in body else "```"
    return f"{ticks}{kind}\n{body.rstrip()}\n{ticks}\n"


def notebook_to_qmd(notebook: Path, *, council: str, failed: bool = False, title: str | None = None,
                    error: str | None = None, synthetic: bool = False) -> list[Path]:
    """Write ``<stem>.qmd`` (and ``<stem>-figures/``) beside an executed notebook for Quarto to render.

    The page is the notebook's markdown and outputs only, with no code cell left to run, so
    Quarto cannot re-execute anything. Why not hand Quarto the .ipynb itself: Quarto drops
    the alt text that ``insightlib.report.charts.show`` stores in the output metadata (its Jupyter
    image output takes alt text from a figure caption only), it would print tracebacks of a
    failed step, and it needs a Jupyter installation to read notebooks. Images become files
    with ``fig-alt``, so they reach both the HTML page and the Typst PDF.

    Text is text: the title is escaped for Quarto (``text.quarto_md``), every Markdown output is
    neutralised (``text.neutralise_markdown``: no shortcode, raw block, raw attribute, HTML or
    math can come from data), plain-text outputs become escaped paragraphs, and raw HTML
    tables have no double braces.
    """
    import nbformat

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{notebook}: not a readable notebook ({exc}).") from None
    nb = _clean_notebook(nb)
    evaluation_title = title
    title = _take_title(nb, notebook.stem.replace("_", " ").capitalize())
    fig_dir_name = f"{notebook.stem}-figures"
    fig_dir = notebook.parent / fig_dir_name
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    written: list[Path] = []
    parts = ["---\n" + _yaml_dump({"title": text.quarto_md(f"{council}: {evaluation_title or title}")}) + "---\n"]
    if synthetic:  # also on the PDF, which has no site banner
        parts.append("::: {.callout-important}\n" + text.quarto_md(text.SYNTHETIC_NOTICE) + "\n:::\n")
    if failed:
        parts.append("::: {.callout-warning}\n" + text.quarto_md(failure_sentence(error)) + "\n:::\n")
    n_fig = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if cell.source.strip():
                parts.append(cell.source.strip() + "\n")
            continue
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                parts.append(_plain_text(_text(out.get("text", ""))))
            elif kind == "error":
                parts.append("::: {.callout-warning}\n" + text.quarto_md(STEP_FAILED) + "\n:::\n")
            elif kind in ("display_data", "execute_result"):
                data = out.get("data", {})
                meta = out.get("metadata", {})
                image = next((m for m in ("image/png", "image/jpeg", "image/svg+xml") if m in data), None)
                if image:
                    n_fig += 1
                    ext = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}[image]
                    fig_dir.mkdir(parents=True, exist_ok=True)
                    path = fig_dir / f"figure-{n_fig}.{ext}"
                    if image == "image/svg+xml":
                        path.write_text(_text(data[image]), encoding="utf-8")
                    else:
                        path.write_bytes(base64.b64decode(_text(data[image])))
                    written.append(path)
                    alt = (meta.get(image, {}) or {}).get("alt") or _text(data.get("text/plain", ""))
                    narrow = (meta.get(image, {}) or {}).get("narrow") if image == "image/png" else None
                    wide = f'![]({fig_dir_name}/{path.name}){{fig-alt="{_attribute(alt)}"}}\n'
                    if narrow:  # a phone gets the chart drawn for its width; the PDF the wide one
                        small = fig_dir / f"figure-{n_fig}-narrow.png"
                        small.write_bytes(base64.b64decode(_text(narrow)))
                        written.append(small)
                        parts.append("::: {.chart-wide}\n" + wide + ":::\n")
                        parts.append('::: {.content-visible when-format="html"}\n::: {.chart-narrow}\n'
                                     f'![]({fig_dir_name}/{small.name}){{fig-alt="{_attribute(alt)}"}}\n:::\n:::\n')
                    else:
                        parts.append(wide)
                elif "text/markdown" in data:
                    parts.append(text.neutralise_markdown(_text(data["text/markdown"]).strip()) + "\n")
                elif "text/html" in data:
                    safe = text.safe_html(_text(data["text/html"]))
                    # a pandas table becomes Pandoc's own (drawn natively in HTML and Typst, numbers right-aligned)
                    pipe = tables.html_to_pipe_table(safe) if "<table" in safe else None
                    parts.append(pipe if pipe else _fence("{=html}", text.neutralise_raw_html(safe)))
                elif "text/plain" in data:
                    parts.append(_plain_text(_text(data["text/plain"])))
    qmd = notebook.with_suffix(".qmd")
    qmd.write_text("\n".join(parts), encoding="utf-8")
    written.append(qmd)
    return written


class QuartoFailed(RuntimeError):
    pass


GENERATED = "# Written by 'insight render' from the project template _quarto.yml."
#: The Lua filter that shows any raw block or inline that is not insight's own HTML as text.
SAFE_FILTER = "_insight_safe.lua"
#: The only environment variables Quarto is given: it cannot publish a key or a secret from the
#: environment even if a shortcode slipped through.
QUARTO_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TMP", "TEMP", "TZ",
                      "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR")
#: The first lines of every other file render writes at the top of the reports folder.
WRITTEN = "# Written by 'insight render'; replaced on each render."
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
#: The report's download link says "PDF" (Quarto would say "Typst"). The "html" entry names no other
#: format, and stops Quarto adding its own link to every format beside the one given here.
FORMAT_LINKS = ["html", {"format": "typst", "text": "PDF", "icon": "file-pdf"}]
#: Typst: text in table cells set ragged right, never justified into gappy words.
TYPST_HEADER = "#set par(justify: false)\n#show table.cell: set par(justify: false)\n#show table: set text(size: 9pt)\n"
#: Files and folders the Quarto project puts at the top of the reports folder.
PROJECT_FILES = ("_quarto.yml", "index.qmd", "national.qmd", SAFE_FILTER, SITE_CSS)


def _generated(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(len(GENERATED)) == GENERATED
    except OSError:
        return False


def check_project_ownership(reports_dir: Path, force: bool = False) -> None:
    """Refuse to write the Quarto project over a user's own _quarto.yml, index.qmd ... or site folder.

    A file render wrote starts with GENERATED or WRITTEN; a folder rendered before these lines
    existed is known by its generated _quarto.yml."""
    if force:
        return
    legacy = _generated(reports_dir / "_quarto.yml")
    theirs = []
    for name in PROJECT_FILES:
        path = reports_dir / name
        if not path.exists():
            continue
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:300]
        except OSError:
            head = ""
        if name == "_quarto.yml":
            ours = head.startswith(GENERATED)
        elif name == SAFE_FILTER:  # a copy of the packaged filter, as render writes it
            ours = path.read_bytes() == (_templates_dir() / "insight_safe.lua").read_bytes() or legacy
        else:
            ours = WRITTEN in head or legacy
        if not ours:
            theirs.append(name)
    if not _owns_site(reports_dir / "_site", reports_dir):
        theirs.append("_site/")
    if theirs:
        raise InputError(f"{reports_dir} holds {', '.join(theirs)} that 'insight render' did not write, so nothing "
                         "was changed; render another reports folder, move them away, or add --force to replace them.")


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
        if (not text.startswith(GENERATED) and isinstance(config, dict)
                and (config.get("project") or {}).get("type") == "website"):
            return config
    path = _templates_dir() / "quarto.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _yaml_dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def write_quarto_project(reports_dir: Path, evaluations: list[Evaluation], national_year: int | None = None,
                         skipped: list | None = None) -> list[Path]:
    """Write the Quarto website project into ``reports_dir``; returns the files written.

    A notebook that cannot be read is left out (and added to ``skipped`` with the reason).

    Each executed notebook gets a ``.qmd`` twin beside it (``notebook_to_qmd``): that is what
    Quarto renders, to HTML and to a Typst PDF. The notebooks themselves are not touched.
    """
    from insightlib.analyses import national

    written: list[Path] = []

    def put(rel: str, text: str) -> None:
        path = reports_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)

    config = quarto_template()
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
        config["website"]["announcement"] = {"content": f"**{text.quarto_md(text.SYNTHETIC_NOTICE)}**",
                                             "type": "warning", "dismissable": False, "position": "below-navbar"}
    filters = config.get("filters") or []
    if SAFE_FILTER not in filters:
        config["filters"] = [*filters, SAFE_FILTER]
    put(SAFE_FILTER, (_templates_dir() / "insight_safe.lua").read_text(encoding="utf-8"))
    put("_quarto.yml", GENERATED + "\n" + _yaml_dump(config))

    summaries = {ev.slug: evaluation_summary(ev) for ev in evaluations}
    home = ["---\n" + WRITTEN + "\n" + _yaml_dump({"title": "Do children come back after their case is closed?"}) + "---\n",
            "Each evaluation's answer across the councils, then every council's report, and a "
            "[national summary](national.qmd) comparing every council's re-referral rate with England's.\n"]
    for ev in reading_order(evaluations):
        answer = summaries.get(ev.slug)
        n = len(ev.councils)
        reports = (f"{n} council report{'s' if n != 1 else ''}" if n else "") if all(
            r.la_code.isdigit() for r in ev.councils) else f"{n} report{'s' if n != 1 else ''}"
        if ev.national:
            reports = "one report across " + (f"{len(ev.covers)} councils" if ev.covers else "all councils") + \
                (f" and {reports}" if n else "")
        home.append(f"## [{text.quarto_md(ev.title)}]({ev.slug}/index.qmd)\n")
        home.append(("::: {.answer}\n" + text.quarto_md(answer.sentence) + "\n:::\n") if answer else
                    (text.quarto_md(ev.description) + "\n" if ev.description else ""))
        home.append(f"[{text.quarto_md(reports[:1].upper() + reports[1:])}]({ev.slug}/index.qmd)\n")
    home.append("## [National summary](national.qmd)\n\nEvery council's 12-month re-referral rate against England's.\n")
    put("index.qmd", "\n".join(home))

    for ev in evaluations:
        items = []
        for rep in list(ev.reports):
            try:
                written += notebook_to_qmd(rep.notebook, council=rep.council, failed=rep.status == "failed",
                                           title=rep.evaluation_title, error=rep.error, synthetic=rep.synthetic)
            except InputError as exc:  # left out, with its stale page source, so the others build
                ev.reports.remove(rep)
                rep.notebook.with_suffix(".qmd").unlink(missing_ok=True)
                if skipped is not None:
                    skipped.append((rep.notebook, str(exc)))
                continue
            items.append({"title": text.quarto_md(rep.council), "la_code": text.quarto_md(rep.la_code),
                          "finding": text.quarto_md(_listing_finding(rep, summaries.get(ev.slug))),
                          "path": f"{rep.la_code}/{rep.notebook.stem}.html"})
            put(f"{ev.slug}/{rep.la_code}/_metadata.yml", _yaml_dump({
                "format": {"html": {"toc": True, "format-links": FORMAT_LINKS},
                           "typst": {"papersize": "a4", "include-in-header": {"text": TYPST_HEADER}}},
                "execute": {"enabled": False, "echo": False},
            }))
        put(f"{ev.slug}/councils.yml", _yaml_dump(items))
        summary = summaries.get(ev.slug)
        body, front = [], {"title": text.quarto_md(ev.title)}
        if summary is not None:
            folder = reports_dir / ev.slug / "summary-figures"
            body.append(_fence("{=html}", text.neutralise_raw_html(summary_html(
                summary, lambda narrow: _write_summary_chart(summary, folder, narrow)))))
            written += sorted(folder.glob("*.png"))
            front["resources"] = ["summary-figures/*.png"]
            body.append("## About this evaluation\n")
        body.append(text.quarto_md(ev.description or "Choose a council to read its report.") + "\n")
        if ev.covers:
            body.append(f"The report across councils covers {len(ev.covers)} councils: "
                        + ", ".join(text.quarto_md(f"{council_label(c)} ({c})") for c in ev.covers) + ".\n")
        if summary is not None and summary.method:
            body.append("## Method\n\n" + "\n\n".join(text.quarto_md(m) for m in summary.method) + "\n")
        body.append("## Reports\n")  # Quarto puts the listing at the end of the page, under this heading
        front["listing"] = {"contents": "councils.yml", "type": "table",
                            "fields": ["title", "la_code", "finding"],
                            "field-display-names": {"title": "Council", "la_code": "Code", "finding": "Finding"},
                            "sort": "title", "sort-ui": True, "filter-ui": len(items) > HOME_COUNCILS}
        put(f"{ev.slug}/index.qmd", "---\n" + _yaml_dump(front) + "---\n\n" + "\n".join(body))

    try:
        summary = national.build_national_summary(reports_dir, year=national_year,
                                                  settings=council_settings(evaluations))
    except InputError as exc:
        put("national.qmd", "---\n" + WRITTEN + "\ntitle: National summary\n---\n\nThe national summary could not be built: "
            f"{text.quarto_md(exc)}\n")
        return written
    fig_dir = reports_dir / "national-figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    parts = ["---\n" + WRITTEN + "\n" + _yaml_dump({"title": f"National summary: re-referrals within 12 months, {summary.year}"}) + "---\n"]
    for sec in summary.sections:
        # the national page's headings and paragraphs are plain text (the fallback escapes them for HTML):
        # every mark is escaped here, so a council's name or a year is shown as written, never as Markdown
        if sec.heading:
            parts.append(f"## {text.quarto_md(sec.heading)}\n")
        parts += [text.quarto_md(p) + "\n" for p in sec.paragraphs]
        for fig in sec.figures:
            (fig_dir / f"{fig.name}.png").write_bytes(fig.png)
            written.append(fig_dir / f"{fig.name}.png")
            parts.append(f'![{text.quarto_md(fig.title)}](national-figures/{fig.name}.png){{fig-alt="{_attribute(fig.alt)}"}}\n')
        for _heading, table_html in sec.tables:
            parts.append(_fence("{=html}", text.neutralise_raw_html(table_html)))
    put("national.qmd", "\n".join(parts))
    return written


def render_quarto(reports_dir: Path, evaluations: list[Evaluation], quarto: str | None = None, *,
                  national_year: int | None = None, force: bool = False) -> SiteResult:
    quarto = quarto or shutil.which("quarto")
    if not quarto:
        raise InsightError(INSTALL_QUARTO)
    check_project_ownership(reports_dir, force)
    skipped: list[tuple[Path, str]] = []
    written = write_quarto_project(reports_dir, evaluations, national_year=national_year, skipped=skipped)
    site = reports_dir / "_site"
    if site.is_dir():
        _mark_site(site)  # a failed render leaves a folder the HTML fallback may still replace
    env = {k: v for k, v in os.environ.items() if k in QUARTO_ENVIRONMENT or k.startswith("QUARTO_")}
    env["QUARTO_PYTHON"] = sys.executable
    proc = subprocess.run([quarto, "render", "--no-execute"], cwd=reports_dir, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        failure = QuartoFailed(tail or f"exit code {proc.returncode}")
        failure.skipped = skipped
        raise failure
    out = reports_dir / "_site"
    _mark_site(out)
    reports = [rep for ev in evaluations for rep in ev.reports]
    result = SiteResult(out_dir=out, index=out / "index.html", engine="quarto", reports=reports, pages=written,
                        messages=[f"Rendered with Quarto ({quarto}); PDFs are beside each report."])
    _note_skipped(result, skipped)
    return result
