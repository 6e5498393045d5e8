"""Tables as a reader wants them, on the web page and in the PDF.

A notebook's tables reach the site as the HTML pandas wrote. For Quarto they become Markdown
pipe tables (``html_to_pipe_table``): Pandoc's own tables, which Quarto draws natively both in
HTML and in the Typst PDF (no raw HTML table for Quarto to parse and restyle, one subprocess per
table), with pandas' 0, 1, 2 ... row numbers dropped and columns of numbers right-aligned.
Every cell is text (escaped for Markdown): nothing in a table can become a link, a shortcode or
markup.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from insightlib.report import text

_NUM = r"[-+\u2212]?(?:\d[\d,]*)?\.?\d+\s*(?:%|days?|points?|pp)?"
#: A cell that reads as a number: 12, -3.4, 1,234, 22.6%, "-9.4 to 10.5", "0.68 (0.58 to 0.81)", or a
#: disclosure symbol (c suppressed, x not available, u low reliability, z not applicable).
NUMERIC_CELL = re.compile(
    rf"^\s*(?:{_NUM}(?:\s*(?:to|\u2013|-)\s*{_NUM})?|{_NUM}\s*\(\s*{_NUM}\s*(?:to|\u2013|,)\s*{_NUM}\s*\)|[cxuz]|<\s*\d+)\s*$"
)


def is_numeric(cell: str) -> bool:
    return bool(NUMERIC_CELL.match(html.unescape(cell)))


class _TableParser(HTMLParser):
    """Header rows and body rows of the first table, each cell (is_header, text, colspan)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.head: list[list[tuple[bool, str, int]]] = []
        self.body: list[list[tuple[bool, str, int]]] = []
        self._section = None
        self._row = None
        self._cell = None
        self._depth = 0
        self.nested = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._depth += 1
            if self._depth > 1:
                self.nested = True
        elif tag in ("thead", "tbody"):
            self._section = tag
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            span = dict(attrs).get("colspan") or "1"
            self._cell = [tag == "th", "", int(span) if span.isdigit() else 1]
        elif tag == "br" and self._cell is not None:
            self._cell[1] += " "

    def handle_endtag(self, tag):
        if tag == "table":
            self._depth -= 1
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append((self._cell[0], " ".join(self._cell[1].split()), self._cell[2]))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            (self.head if self._section == "thead" else self.body).append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def _expand(row):
    out = []
    for is_th, value, span in row:
        out += [(is_th, value)] * max(1, span)
    return out


def html_to_pipe_table(fragment: str) -> str | None:
    """A pandas HTML table as a Markdown pipe table, or None where it cannot be one (nested tables,
    rows of different lengths): then the caller keeps the HTML."""
    parser = _TableParser()
    try:
        parser.feed(fragment)
        parser.close()
    except Exception:  # noqa: BLE001 - malformed markup stays HTML, made safe by the caller
        return None
    if parser.nested or not parser.body:
        return None
    head = [_expand(r) for r in parser.head]
    body = [_expand(r) for r in parser.body]
    width = max(len(r) for r in head + body)
    if any(len(r) != width for r in body):
        return None
    # pandas writes a second header row naming the index ("Group" over the row labels): merged into the first
    head = [r + [(True, "")] * (width - len(r)) for r in head if len(r) <= width]
    columns = (
        [" ".join(v for v in (row[i][1] for row in head) if v).strip() for i in range(width)] if head else [""] * width
    )
    # the 0, 1, 2 ... index column: dropped
    first = [r[0][1] for r in body]
    if body and all(r[0][0] for r in body) and first == [str(i) for i in range(len(body))] and not columns[0]:
        columns = columns[1:]
        body = [r[1:] for r in body]
        width -= 1
    if width == 0:
        return None
    cells = [[v for _th, v in r] for r in body]
    numeric = [
        bool([row[i] for row in cells if row[i].strip()]) and all(is_numeric(row[i]) for row in cells if row[i].strip())
        for i in range(width)
    ]

    def md(value: str) -> str:
        return text.quarto_md(value) if value else " "

    lines = [
        "| " + " | ".join(md(c) for c in columns) + " |",
        "|" + "|".join("---:" if n else ":---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(md(v) for v in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"
