"""The CIN census XML parsed as a stream with expat, keeping each element's line: DTDs, entity
declarations and nesting far deeper than the census's own are refused with a sentence naming the line;
each <Child> is handed on as it closes and then dropped (ingest/cin_census.py makes it rows).
"""

from __future__ import annotations

import xml.parsers.expat
from pathlib import Path

from insightlib.ingest.files import Problem

#: A CIN census return nests 7 elements deep; anything far deeper is refused, not recursed into.
XML_MAX_DEPTH = 64


class XMLRefused(Exception):
    """An XML construct the reader refuses (a DTD, an entity, nesting far too deep): line and sentence."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


class XMLElement:
    __slots__ = ("tag", "line", "text", "children", "nested")

    def __init__(self, tag: str, line: int):
        self.tag = tag
        self.line = line
        self.text: list[str] | tuple = ()  # made a list when text comes (most elements have none or one)
        self.children: list[XMLElement] | tuple = ()
        self.nested = False  # had child elements (kept or not)

    def find(self, tag: str) -> XMLElement | None:
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def findall(self, tag: str) -> list[XMLElement]:
        return [c for c in self.children if c.tag == tag]

    def value(self) -> str:
        return "".join(self.text).strip()


def stray_text(top: XMLElement, name: str, problems: list[Problem]) -> None:
    """Text mixed between child elements is not allowed by the census schema (walked without recursion)."""
    todo = [top]
    while todo:
        node = todo.pop()
        if node.nested:
            # node.text holds only chunks that are not all whitespace, so it is empty exactly when value() is
            text = node.value() if node.text else ""
            if text:
                problems.append(
                    Problem(
                        name,
                        node.line,
                        None,
                        "broken XML",
                        f"{name} line {node.line}: stray text {text[:40]!r} inside <{node.tag}> "
                        "(only elements belong there).",
                    )
                )
            todo.extend(reversed(node.children))


def refuse_dtd(parser) -> None:
    """No DTDs or entity declarations in a census return (defusedxml's rules, on our own line-keeping parser)."""
    from defusedxml.common import DTDForbidden, EntitiesForbidden

    def doctype(name, sysid, pubid, has_internal_subset):
        raise DTDForbidden(name, sysid, pubid)

    def entity(name, is_parameter, value, base, sysid, pubid, notation_name):
        raise EntitiesForbidden(name, value, base, sysid, pubid, notation_name)

    def unparsed(name, base, sysid, pubid, notation_name):
        raise EntitiesForbidden(name, None, base, sysid, pubid, notation_name)

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = unparsed
    parser.ExternalEntityRefHandler = lambda *a: False


def parse(path: Path, rows) -> tuple[XMLElement, tuple[int, str] | None]:
    """Stream the file through expat: the element tree without its <Child>ren (each handed to
    ``rows.child`` as it closes), and (line, sentence) of the first thing that stopped the parse, if any."""
    from defusedxml.common import DefusedXmlException

    root = XMLElement("#document", 0)
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True
    refuse_dtd(parser)
    _set_handlers(parser, [root], rows)

    err: tuple[int, str] | None = None
    try:
        with path.open("rb") as fh:
            parser.ParseFile(fh)
    except xml.parsers.expat.ExpatError as exc:
        err = (exc.lineno, f"column {exc.offset + 1}: the XML is broken ({xml.parsers.expat.ErrorString(exc.code)})")
    except DefusedXmlException as exc:
        what = "a DTD (<!DOCTYPE ...>)" if type(exc).__name__ == "DTDForbidden" else "an entity declaration"
        err = (
            parser.CurrentLineNumber,
            f"it holds {what}, which a CIN census return never needs and insight refuses "
            "for safety (entities can hide or invent data); remove it",
        )
    except XMLRefused as exc:
        err = (exc.line, str(exc))
    return root, err


def _set_handlers(parser, stack: list[XMLElement], rows) -> None:
    """expat's handlers: elements kept as _Nodes on ``stack`` (a <Child> of Message/Children handed to
    ``rows.child`` when it closes, then dropped), nesting past XML_MAX_DEPTH refused."""
    # The handlers run once per element (millions in a big return): kept to the fewest operations.
    push, pop = stack.append, stack.pop

    def start(tag, attrs):
        depth = len(stack)
        if depth > XML_MAX_DEPTH:
            raise XMLRefused(
                parser.CurrentLineNumber,
                f"elements are nested more than {XML_MAX_DEPTH} deep (a CIN census return nests 7 deep)",
            )
        if ":" in tag:
            tag = tag.rsplit(":", 1)[-1]
        node = XMLElement(tag, parser.CurrentLineNumber)
        parent = stack[-1]
        parent.nested = True
        # A <Child> of Message/Children is read and dropped when it closes; everything else is kept.
        if tag != "Child" or depth != 3 or parent.tag != "Children" or stack[1].tag != "Message":
            if parent.children:
                parent.children.append(node)
            else:
                parent.children = [node]
        push(node)

    def end(tag):
        node = pop()
        if node.text and node.nested:
            rows.stray_text_seen = True
        if node.tag == "Child" and len(stack) == 3 and stack[-1].tag == "Children" and stack[1].tag == "Message":
            rows.child(node)
            rows.stray_text_seen = False

    def chars(text):
        if not text.isspace():
            node = stack[-1]
            if node.text:
                node.text.append(text)
            else:
                node.text = [text]

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
