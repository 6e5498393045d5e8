"""A report's PDF for the Quarto route: its page source through Quarto's own Pandoc (to Typst, through
insight's safe filter) and Quarto's own Typst, one report at a time beside the ``quarto render`` of the site.

Split from quarto.py.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from .site_pages import _templates_dir


class QuartoFailed(RuntimeError):
    pass


#: Typst: text in table cells set ragged right, never justified into gappy words.
TYPST_HEADER = "#set par(justify: false)\n#show table.cell: set par(justify: false)\n#show table: set text(size: 9pt)\n"
#: The Lua filter that makes a report's PDF from its page source (after SAFE_FILTER): screen-only charts
#: left out, callouts boxed.
PDF_FILTER = "insight_pdf.lua"


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
