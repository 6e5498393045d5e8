"""Every report starts with its finding in plain words; method names and code paths are in a "Method"
section at the end, for an analyst (the rendered pages are checked in test_pipeline and test_site)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from leader_text import CODE_PATH, code_paths, headings

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: The first section of every report: its answer.
FINDING = {"The finding", "Headlines", "The verdict"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_its_finding_and_ends_with_its_method(path):
    nb = nbformat.read(str(path), as_version=4)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    sections = [m.group(1).strip() for s in md for m in re.finditer(r"^##\s+(.+)$", s, re.M)]
    assert sections[0] in FINDING, sections[:3]
    assert sections[-1].startswith("Method")
    method = next(i for i, s in enumerate(md) if s.startswith("## Method"))
    for source in md[:method]:
        assert not CODE_PATH.search(source), (path.name, CODE_PATH.search(source).group(0), source[:200])
    # the code cells' own words (strings shown to the reader) name no code either
    for cell in nb.cells:
        if cell.cell_type == "code":
            for literal in re.findall(r'f?"([^"\n]*)"', cell.source):
                assert not re.search(r"\b(DoWhy|pyfixest|lifelines|did2s)\b", literal), (path.name, literal)


def test_the_scan_finds_code_before_method_and_ignores_it_after():
    page = ("<html><nav>insightlib.site</nav><main><h1>T</h1><h2>The finding</h2><p>Fewer came back.</p>"
            "<p>Computed by insightlib.causal, see docs/causal.md, with the did2s estimator of pyfixest.</p>"
            '<h2 id="method">Method</h2><p>insightlib.causal and DoWhy.</p></main></html>')
    assert code_paths(page) == ["did2s", "docs/causal.md", "insightlib.causal", "pyfixest"]
    assert code_paths(page.replace("Computed by insightlib.causal, see docs/causal.md, with the did2s estimator of pyfixest.", "")) == []
    assert headings(page) == ["The finding", "Method"]
