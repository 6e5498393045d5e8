"""The Quarto route publishes no number the HTML fallback does not (issue 9, item 3's Quarto side).

The adversary (tests/disclosure_attack*.py) reads the fallback's pages only. For its result to carry over to
the Quarto route, every number a reader can find there (each page's HTML text and attributes, Quarto's search
index, the text of each report's PDF) must be one the fallback's same page shows. A small synthetic site is
built as the adversary builds it, rendered both ways, and the numbers compared page by page. What Quarto adds of
its own is not data and is taken out first: its cross-reference captions ("Table 1:"), the PDFs' page numbers
and the home page's fixed description of the national summary ("12-month").
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

NUM = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?%?")
CHROME = [re.compile(r"\b(?:Table|Figure)\s+\d+\s*:"), re.compile(r"\b12-month re-referral rate")]


def _numbers(text: str) -> set[str]:
    for pattern in CHROME:
        text = pattern.sub(" ", text)
    return {m.group(0).replace("−", "-").rstrip(".,") for m in NUM.finditer(text.replace("\u2011", "-"))}


def _page_numbers(path: Path) -> set[str]:
    """Every number of a page as a reader finds it: its text (no scripts or styles) and its attributes."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    out = _numbers(soup.get_text(" "))
    for tag in soup.find_all(True):
        for attr in ("alt", "title", "aria-label"):
            if tag.get(attr):
                out |= _numbers(str(tag[attr]))
    return out


def _pdf_numbers(path: Path) -> set[str]:
    """The PDF's text, page by page, less each page's own page number (its last line)."""
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    out: set[str] = set()
    for i in range(1, pages + 1):
        text = subprocess.run(["pdftotext", "-f", str(i), "-l", str(i), "-layout", str(path), "-"],
                              capture_output=True, text=True).stdout
        lines = [line for line in text.splitlines() if line.strip()]
        if lines and lines[-1].strip() == str(i):
            lines = lines[:-1]
        out |= _numbers("\n".join(lines))
    return out


@pytest.mark.needs_quarto
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("quarto") is None, reason="quarto is not on PATH (see docs/publishing.md)")
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext is absent (apt-get install poppler-utils)")
def test_the_quarto_route_publishes_no_number_the_fallback_does_not(tmp_path, monkeypatch):
    import test_disclosure_attack as harness

    from insightlib.batch import site

    monkeypatch.setenv("INSIGHT_ATTACK_NOTEBOOKS", "rr,pr")
    harness.council_site(tmp_path, 1, 30, 0)
    reports = tmp_path / "reports"
    site.render_site(reports, tmp_path / "fallback", engine="html")
    site.render_site(reports, engine="quarto")
    fallback, quarto = tmp_path / "fallback", reports / "_site"
    search = json.loads((quarto / "search.json").read_text(encoding="utf-8"))
    pages = sorted(p.relative_to(fallback) for p in fallback.rglob("*.html"))
    assert len(pages) >= 4 and any(p.name == "rereferral.html" for p in pages)
    extra, pdfs = {}, 0
    for rel in pages:
        shown = _page_numbers(fallback / rel)
        found = {"page": _page_numbers(quarto / rel) if (quarto / rel).exists() else set()}
        found["search.json"] = set().union(*[
            _numbers(" ".join(str(e.get(k, "")) for k in ("title", "section", "text")))
            for e in search if e["href"].split("#")[0] == rel.as_posix()] or [set()])
        if rel.name == "rereferral.html":
            assert len(found["page"]) >= 20 and len(found["search.json"]) >= 20  # the comparison has numbers to compare
        pdf = (quarto / rel).with_suffix(".pdf")
        if pdf.exists():
            pdfs += 1
            found["pdf"] = _pdf_numbers(pdf)
        for where, numbers in found.items():
            if numbers - shown:
                extra[f"{rel} ({where})"] = sorted(numbers - shown)[:10]
    assert pdfs >= 1
    assert not extra, extra
