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

This module chooses the route; the work is in ``site_reports`` (what was run), ``site_pages``
(what both routes share, and which files render owns), ``site_html`` (the fallback) and
``quarto`` (the Quarto project).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from insightlib.errors import InputError, InsightError

from .quarto import render_quarto
from .quarto_pdf import QuartoFailed
from .site_html import render_html
from .site_pages import INSTALL_QUARTO, _note_skipped
from .site_reports import SiteResult, discover, one_disclosure_per_council


def render_site(
    reports_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    engine: str | None = None,
    national_year: int | None = None,
    force: bool = False,
    workers: int | None = None,
) -> SiteResult:
    """Build the website from executed notebooks. ``engine`` forces "quarto" or "html" (default: Quarto if on PATH).

    Nothing render did not write is replaced (a user's _quarto.yml, index.qmd or site folder)
    unless ``force``. The fallback draws its pages on ``workers`` processes (default: every core)."""
    reports_dir = Path(reports_dir)
    evaluations = discover(reports_dir)
    if not evaluations:
        raise InputError(
            f"{reports_dir}: no executed notebooks found (expected <evaluation>/<council>/<notebook>.ipynb); "
            "run 'insight run evaluations/<name>.yml' first."
        )
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
            result = render_html(
                reports_dir, evaluations, out_dir, national_year=national_year, force=force, workers=workers
            )
            result.messages.insert(0, f"quarto render failed ({exc}); built the plain HTML site instead.")
            _note_skipped(result, getattr(exc, "skipped", []))
        _note_skipped(result, weaker)
        return result
    result = render_html(reports_dir, evaluations, out_dir, national_year=national_year, force=force, workers=workers)
    result.messages.append(INSTALL_QUARTO)
    _note_skipped(result, weaker)
    return result
