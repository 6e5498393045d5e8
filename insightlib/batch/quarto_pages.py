"""A report's page for Quarto: the ``.qmd`` twin of an executed notebook, its markdown and
outputs only (nothing left to execute), with every figure a file carrying its alt text.

Split from site.py (with quarto.py, which writes the rest of the project and runs Quarto).
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import yaml

from insightlib.errors import InputError
from insightlib.report import tables, text

from .site_pages import _clean_notebook, _take_title
from .site_reports import STEP_FAILED, failure_sentence


def _yaml_dump(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _plain_text(value: str) -> str:
    """A plain-text output as escaped lines (a Pandoc line block), never a code block: Quarto
    resolves shortcodes inside code blocks."""
    lines = [line for line in value.rstrip().splitlines()]
    if not any(line.strip() for line in lines):
        return ""
    return (
        "::: {.output-text}\n"
        + "\n".join(f"| {text.quarto_md(line)}" if line.strip() else "|" for line in lines)
        + "\n:::\n"
    )


def _attribute(value: str) -> str:
    """Text for a Pandoc attribute value (alt text): one line, no quote or backslash, and no brace
    (Quarto reads shortcodes inside attributes, and an unbalanced one there swallows the rest of
    the page), so braces become parentheses."""
    value = " ".join(str(value).split()).replace("\\", "/").replace('"', "'")
    return value.replace("{", "(").replace("}", ")")


def _fence(kind: str, body: str) -> str:
    ticks = "````" if "```" in body else "```"
    return f"{ticks}{kind}\n{body.rstrip()}\n{ticks}\n"


def notebook_to_qmd(
    notebook: Path,
    *,
    dest: Path | None = None,
    council: str,
    failed: bool = False,
    title: str | None = None,
    error: str | None = None,
    synthetic: bool = False,
) -> list[Path]:
    """Write ``dest`` (by default ``<stem>.qmd`` beside the notebook) and ``<stem>-figures/`` beside it:
    an executed notebook's page for Quarto to render.

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
    nb = _read_notebook(notebook)
    nb_title = _take_title(nb, notebook.stem.replace("_", " ").capitalize())
    qmd = dest or notebook.with_suffix(".qmd")
    fig_dir = qmd.parent / f"{qmd.stem}-figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    written: list[Path] = []
    parts = _page_head(qmd, f"{council}: {title or nb_title}", synthetic, failure_sentence(error) if failed else None)
    figures = _Figures(fig_dir, written, synthetic)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if cell.source.strip():
                parts.append(cell.source.strip() + "\n")
            continue
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            parts += _output_md(out, figures)
    qmd.parent.mkdir(parents=True, exist_ok=True)
    qmd.write_text("\n".join(parts), encoding="utf-8")
    written.append(qmd)
    return written


def _read_notebook(notebook: Path):
    import nbformat

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{notebook}: not a readable notebook ({exc}).") from None
    return _clean_notebook(nb)


def _page_head(qmd: Path, title: str, synthetic: bool, failure: str | None) -> list[str]:
    """The page's front matter (its one title, a "PDF" link) and the notices above the report."""
    # the PDF is made beside the page (quarto_pdf.make_pdf), so the page links it itself, labelled "PDF"
    front = {
        "title": text.quarto_md(title),
        "other-links": [{"text": "PDF", "href": f"{qmd.stem}.pdf", "icon": "file-pdf"}],
    }
    parts = ["---\n" + _yaml_dump(front) + "---\n"]
    if synthetic:  # on the PDF, which has no site banner (the web page shows the banner only)
        parts.append("::: {.callout-important .pdf-only}\n" + text.quarto_md(text.SYNTHETIC_NOTICE) + "\n:::\n")
    if failure:
        parts.append("::: {.callout-warning}\n" + text.quarto_md(failure) + "\n:::\n")
    return parts


class _Figures:
    """A notebook's figures as numbered files in ``<stem>-figures/`` beside it."""

    def __init__(self, folder: Path, written: list[Path], synthetic: bool = False):
        self.folder, self.written, self.count = folder, written, 0
        self.synthetic = synthetic  # the notice is the site's banner and the PDF's box: not said again

    def save(self, data, ext: str, suffix: str = "") -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"figure-{self.count}{suffix}.{ext}"
        if ext == "svg":
            path.write_text(_text(data), encoding="utf-8")
        else:
            path.write_bytes(base64.b64decode(_text(data)))
        self.written.append(path)
        return path


def _output_md(out: dict, figures: _Figures) -> list[str]:
    """One cell output as page source: text as escaped lines, an error as one sentence, a figure as a
    file with its alt text (and its phone drawing), Markdown neutralised, a pandas table as Pandoc's own."""
    kind = out.get("output_type")
    if kind == "stream":
        return [_plain_text(_text(out.get("text", "")))]
    if kind == "error":
        return ["::: {.callout-warning}\n" + text.quarto_md(STEP_FAILED) + "\n:::\n"]
    if kind not in ("display_data", "execute_result"):
        return []
    data = out.get("data", {})
    meta = out.get("metadata", {})
    image = next((m for m in ("image/png", "image/jpeg", "image/svg+xml") if m in data), None)
    if image:
        figures.count += 1
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}[image]
        path = figures.save(data[image], ext)
        alt = (meta.get(image, {}) or {}).get("alt") or _text(data.get("text/plain", ""))
        narrow = (meta.get(image, {}) or {}).get("narrow") if image == "image/png" else None
        wide = f'![]({figures.folder.name}/{path.name}){{fig-alt="{_attribute(alt)}"}}\n'
        if not narrow:
            return [wide]
        # a phone gets the chart drawn for its width; the PDF the wide one
        small = figures.save(narrow, "png", "-narrow")
        return [
            "::: {.chart-wide}\n" + wide + ":::\n",
            '::: {.content-visible when-format="html"}\n::: {.chart-narrow}\n'
            f'![]({figures.folder.name}/{small.name}){{fig-alt="{_attribute(alt)}"}}\n:::\n:::\n',
        ]
    if "text/markdown" in data:
        markdown = _text(data["text/markdown"])
        if figures.synthetic:
            markdown = markdown.replace(f"**{text.SYNTHETIC_NOTICE}**", "", 1)
        return [text.neutralise_markdown(markdown.strip()) + "\n"] if markdown.strip() else []
    if "text/html" in data:
        safe = text.safe_html(_text(data["text/html"]))
        # a pandas table becomes Pandoc's own (drawn natively in HTML and Typst, numbers right-aligned)
        pipe = tables.html_to_pipe_table(safe) if "<table" in safe else None
        return [pipe if pipe else _fence("{=html}", text.neutralise_raw_html(safe))]
    if "text/plain" in data:
        return [_plain_text(_text(data["text/plain"]))]
    return []
