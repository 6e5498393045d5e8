"""Text from data and evaluation files is text: shown literally, never interpreted.

Intervention names, teams, group labels, council names, an evaluation's title, description and
parameters are written by people outside this code. In a report they pass through Markdown
(nbconvert's and Pandoc's), HTML, Quarto (shortcodes such as ``{{< env X >}}``, raw blocks and
``{=html}``/``{=typst}`` attributes, math) and Typst. ``md`` makes such a string safe to put
inside a Markdown sentence on both routes; ``quarto_md`` also for Quarto's YAML metadata and
listings (where Quarto resolves shortcodes even after Markdown escapes); ``neutralise_markdown``
is the Quarto route's last line of defence for a whole Markdown output, in case a sentence
builder forgot ``md``.
"""

from __future__ import annotations

import html
import re
import string

_PUNCT = re.compile("([" + re.escape(string.punctuation) + "])")
#: Two braces in a row (escaped or not): the start or end of a Quarto shortcode.
_BRACES = re.compile(r"(\\?)([{}])(?=\\?[{}])")


def md(value) -> str:
    """``value`` as literal Markdown text: every ASCII punctuation mark backslash-escaped and
    whitespace collapsed to single spaces (so no heading, list, table, link, raw HTML, math,
    code or attribute can start inside it). Renders as the original text in CommonMark
    (nbconvert) and Pandoc (Quarto) alike."""
    text = " ".join(str(value).split())
    return _PUNCT.sub(r"\\\1", text)


_ESCAPED = re.compile("\\\\([" + re.escape(string.punctuation) + "])")


def plain(markdown_text: str) -> str:
    """A sentence written for Markdown with ``md`` escapes, back as plain text (alt text, a chart)."""
    return _ESCAPED.sub(r"\1", markdown_text)


def break_braces(text: str) -> str:
    """Put an empty Pandoc span between two braces in a row, so Quarto never sees ``{{<``."""
    return _BRACES.sub(lambda m: m.group(1) + m.group(2) + "[]{}", text)


def quarto_md(value) -> str:
    """``value`` as literal text for a Quarto page: ``md`` and no two braces in a row.

    Quarto resolves a shortcode in YAML metadata (a page title, a listing's description) even
    when its braces are backslash-escaped or written as HTML entities; an empty span between
    the braces is the one break it respects, and it renders as nothing in HTML and Typst."""
    return break_braces(md(value))


_UNESCAPED = re.compile(r"(?<!\\)((?:\\\\)*)([{}$<\[\]])")


def neutralise_markdown(text: str) -> str:
    """A Markdown output of a notebook, made safe for Pandoc and Quarto on the way to a page.

    insightlib's own sentences use emphasis, lists and headings only; any brace, dollar or
    opening angle bracket in them came from data or an evaluation file (where ``md`` was not applied).
    Each (and every square bracket: insightlib writes no links) is escaped, so no shortcode, raw
    HTML, raw ``{=format}`` block or attribute, span, link or math can be written, and double
    braces are broken for Quarto."""
    return break_braces(_UNESCAPED.sub(lambda m: m.group(1) + "\\" + m.group(2), text))


def neutralise_raw_html(text: str) -> str:
    """Raw HTML handed to Quarto (a pandas table) with double braces as entities: no shortcode."""
    return text.replace("{{", "{&#123;").replace("}}", "}&#125;")


#: The first sentence of every report of synthetic data, and the banner on every page of its site.
SYNTHETIC_NOTICE = (
    "Synthetic data: every figure here is made up (by insight synth, for demonstration) "
    "and describes no real children or council."
)


def html_text(value) -> str:
    """``value`` as literal HTML text (quotes escaped too, so it is safe in an attribute)."""
    return html.escape(str(value), quote=True)


#: What a report's HTML may contain: text structure and tables, no script, form, frame, style or
#: event handler. Anything else is escaped (so it shows as the text it is), not passed through.
SAFE_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "code",
        "col",
        "colgroup",
        "dd",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "li",
        "ol",
        "p",
        "pre",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
_CELL = ["colspan", "rowspan", "scope", "align"]
#: No id, style or event handler anywhere (an id could pose as the page's own element).
SAFE_ATTRIBUTES = {"table": ["class", "border"], "th": _CELL, "td": _CELL, "a": ["href", "title"], "abbr": ["title"]}
SAFE_PROTOCOLS = frozenset({"http", "https", "mailto"})


_STYLE_ELEMENT = re.compile(r"<style\b[^>]*>.*?</style\s*>", re.IGNORECASE | re.DOTALL)


def safe_html(fragment) -> str:
    """An HTML fragment from a notebook output, with only SAFE_TAGS kept as markup.

    The HTML fallback's backstop: a sentence builder that forgot ``md`` cannot inject an element
    or a script (``<script>`` and ``<img onerror=...>`` come out as visible text, links only to
    http(s), mailto or a relative path)."""
    import bleach

    # pandas puts a <style scoped> block before every table it shows: the site's own stylesheet
    # styles tables, so the block is dropped whole rather than shown as text beside the table.
    fragment = _STYLE_ELEMENT.sub("", str(fragment))
    return bleach.clean(
        fragment, tags=SAFE_TAGS, attributes=SAFE_ATTRIBUTES, protocols=SAFE_PROTOCOLS, strip=False, strip_comments=True
    )
