"""What both routes of the website share: the page templates, the notebook cleaned for readers,
and knowing which files and folders ``insight render`` wrote (so that it replaces nothing else).

Split from site.py.
"""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

from insightlib.errors import InputError

from .site_reports import SiteResult

SITE_TITLE = "insight: do children come back?"
MARKER = ".insight-site"
INSTALL_QUARTO = (
    "Quarto is not installed, so the website was built as plain HTML (no PDFs). For the full site "
    "with a PDF of every report, install Quarto from https://quarto.org/docs/get-started/ "
    "or with `conda install -c conda-forge quarto`, then run `insight render` again."
)
#: On the home page an evaluation lists its councils only when there are this few; else a link.
HOME_COUNCILS = 12
#: The folder of the reports folder that holds the Quarto project render writes (its _quarto.yml,
#: pages and figures); render owns it and the site folder _site, and writes nothing else.
PROJECT_DIR = "_site_src"
GENERATED = "# Written by 'insight render' from the project template _quarto.yml."
#: The first lines of every other file render writes into the project.
WRITTEN = "# Written by 'insight render'; replaced on each render."


def _templates_dir() -> Path:
    return Path(str(resources.files("insightlib") / "templates"))


def _generated(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(len(GENERATED)) == GENERATED
    except OSError:
        return False


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
            raise InputError(
                f"{out} holds files that 'insight render' did not write, so it was left as it is; "
                "move them away, or run 'insight render --force' to replace that folder."
            )
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    out.mkdir(parents=True)
    _mark_site(out)


def _mark_site(out: Path) -> None:
    (out / MARKER).write_text("Built by insight render; the whole folder is replaced on each render.\n")


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
            cell.outputs = [
                o
                for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
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
                cell.source = (cell.source[: m.start()] + cell.source[m.end() :]).strip()
                return m.group(1).strip()
    return fallback


def _note_skipped(result: SiteResult, skipped: list[tuple[Path, str]]) -> None:
    for notebook, reason in skipped:
        result.skipped.append(notebook)
        result.messages.append(f"Left out of the site (run its evaluation again to rebuild it): {reason}")
