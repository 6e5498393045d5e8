"""What was run, as the website sees it: the executed reports under a reports folder, their
evaluations, the disclosure setting each was made with, and each evaluation's answer across councils.

Split from site.py; both routes (Quarto and the plain HTML fallback) build on these.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from insightlib import reference
from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.errors import InputError

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
        return {
            "evaluation": self.evaluation,
            "la_code": self.la_code,
            "council": self.council,
            "notebook": str(self.notebook),
            "status": self.status,
            "href": self.href,
        }


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
    stages: dict = field(default_factory=dict)  # wall seconds of each stage of the build (benchmarks/site_render.py)

    def to_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "index": str(self.index),
            "engine": self.engine,
            "reports": [r.to_dict() for r in self.reports],
            "pages": [str(p) for p in self.pages],
            "messages": self.messages,
            "skipped": [str(p) for p in self.skipped],
        }


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
    return [
        n
        for n in names
        if isinstance(n, str) and n == Path(n).name and n.endswith(".csv") and (rep.notebook.parent / n).is_file()
    ]


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
        by_eval.setdefault(evaluation, []).append(
            Report(
                evaluation=evaluation,
                evaluation_title=title,
                la_code=la_code,
                council=manifest.get("area") or council_label(la_code),  # an area run names its area
                notebook=nb,
                results=results if results.exists() else None,
                status=manifest.get("status", "unknown"),
                error=manifest.get("error"),
                synthetic=results.exists() and _read_json(results).get("synthetic") is True,
            )
        )
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
            for la in ev.covers if rep.la_code == NATIONAL_DIR else [rep.la_code]:
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
            left_out.append(
                (
                    rep.notebook,
                    (
                        f"{rep.evaluation}/{rep.la_code}: made with {had}, but {strict_rep.evaluation} publishes "
                        f"{council_label(la)} with {st}"
                        + (f", rounding {sr}" if sr else "")
                        + "; a count hidden in one "
                        f"could be worked out from the other, so a site shows each council at one setting. "
                        f"Set {want} in its evaluation file and run it again."
                    ),
                )
            )
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
        return summarise(
            kinds.pop(), [(rep.la_code, rep.council, _read_json(rep.results)) for rep in done], title=ev.title
        )
    except (InputError, KeyError, TypeError, ValueError):  # a results.json from another version: no summary
        return None


def summary_html(summary, image_src) -> str:
    """The summary as HTML for both routes: the answer, the forest plot (narrow drawing for phones), the table.
    ``image_src(narrow)`` writes the chart and gives its address."""
    parts = [f'<p class="answer">{html.escape(summary.sentence)}</p>']
    parts += [f"<p>{html.escape(p)}</p>" for p in summary.paragraphs]
    if summary.chart is not None:
        wide, narrow = html.escape(image_src(False)), html.escape(image_src(True))
        parts.append(
            f'<figure class="summary-chart"><a class="figure-link" href="{wide}" title="Open the chart full size">'
            f'<picture><source media="(max-width: 40rem)" srcset="{narrow}">'
            f'<img src="{wide}" alt="{html.escape(summary.chart.alt)}"></picture></a></figure>'
        )
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
