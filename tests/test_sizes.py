"""Issue 12's house rules, kept by a test: no module over about 500 lines and no function over about 60
without a reason written at its top (a docstring line starting "Long because"). A newcomer reads one screen
of a function and one sitting of a module.

TO_SPLIT lists what is still over while the split is under way; an entry that is no longer over fails too, so
the list can only shrink. When it is empty, the rule holds everywhere."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "insightlib"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
REASON = "Long because"

#: Still over the limits ("path" for a module, "path:function" for a function). Remove an entry when it is split.
TO_SPLIT: set[str] = set()


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "_version.py")


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def over_limits() -> set[str]:
    found = set()
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.add(_name(path))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if lines > MAX_FUNCTION_LINES and not any(line.strip().startswith(REASON) for line in doc.splitlines()):
                    found.add(f"{_name(path)}:{node.name}")
    return found


def test_no_module_or_function_grows_past_the_limits():
    new = over_limits() - TO_SPLIT
    assert not new, f"over {MAX_MODULE_LINES} lines a module / {MAX_FUNCTION_LINES} a function: {sorted(new)}"


def test_what_was_split_leaves_the_list():
    done = TO_SPLIT - over_limits()
    assert not done, f"no longer over the limits, remove from TO_SPLIT: {sorted(done)}"
