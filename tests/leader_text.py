"""What a leader reads on a rendered page: its text before the "Method" section written for an analyst.

Leader-facing text names no code: no module path (insightlib.causal), no document path (docs/causal.md),
no library or estimator name from the code (pyfixest, did2s, DoWhy, lifelines ...)."""

from __future__ import annotations

import html
import re

CODE_PATH = re.compile(
    r"insightlib\.[a-z_]+|\bdocs/[\w-]+\.md|\b(?:pyfixest|did2s|lifelines|dowhy|statsmodels|scikit-learn|sklearn|econml|"
    r"papermill|duckdb|nbconvert|CoxPHFitter|pandas)\b", re.I)
_METHOD = re.compile(r"<h2[^>]*>\s*(?:<[^>]+>\s*)*Method\b", re.I)
_HEADING = re.compile(r"<h2[^>]*>(.*?)</h2>", re.S | re.I)


def _text(fragment: str) -> str:
    fragment = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", fragment, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def main_part(page: str) -> str:
    """The page's main content (Quarto's <main>, the fallback's <main>), without navigation and footer."""
    m = re.search(r"<main\b.*?</main>", page, re.S | re.I)
    return m.group(0) if m else page


def leader_text(page: str) -> str:
    body = main_part(page)
    m = _METHOD.search(body)
    return _text(body[: m.start()] if m else body)


def code_paths(page: str) -> list[str]:
    return sorted({m.group(0) for m in CODE_PATH.finditer(leader_text(page))})


def headings(page: str) -> list[str]:
    return [" ".join(_text(h).split()) for h in _HEADING.findall(main_part(page))]
