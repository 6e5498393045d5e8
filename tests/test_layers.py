"""The layers of docs/architecture.md hold: estimators and readers never reach up into analyses, reports or the
batch, and only the batch (and the CLI in it) is at the top. A new module that breaks this fails here."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "insightlib"
LAYERS = ("ingest", "stats", "analyses", "report", "batch", "simulate")
#: What each layer may import besides the core (contract, errors, reference, the package's version).
ALLOWED = {
    "ingest": set(),
    "stats": set(),
    "simulate": {"ingest", "stats"},
    "analyses": {"ingest", "stats", "report", "simulate"},
    "report": {"ingest", "stats", "analyses"},
    "batch": {"ingest", "stats", "analyses", "report", "simulate"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def _imports(path: Path):
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] if _layer(target) == "core" else [target]
            yield from (n for n in names if n.startswith("insightlib"))
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("insightlib"))


def test_no_layer_imports_one_it_should_not():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if here == "core":
            continue
        for target in _imports(path):
            there = _layer(target)
            if there not in ("core", here) and there not in ALLOWED[here]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(wrong)


def test_the_core_modules_import_no_layer():
    for name in ("contract.py", "errors.py", "reference.py"):
        layers = {_layer(t) for t in _imports(PACKAGE / name)} - {"core"}
        assert not layers, (name, layers)
