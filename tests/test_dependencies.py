"""Every package insightlib or a notebook imports is declared, and every declared one is used.

An undeclared import works on the developer's machine (something else pulled it in) and breaks
on a user's; a declared but unused package is weight every council installs for nothing.
"""

import ast
import functools
import importlib.metadata as md
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Declared packages that are used without being imported by name, with the reason.
USED_WITHOUT_IMPORT = {
    "ipykernel": "the Jupyter kernel papermill starts to run each notebook",
    "jupyterlab": "make lab opens the notebooks in JupyterLab for analysts (docs/analyst-guide.md)",
    "dask": "the core of distributed (the cluster scheduler), declared with its [distributed] extra",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _top_level_imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _imported_modules() -> dict[str, str]:
    """Top-level module -> one file that imports it, over insightlib and the notebooks."""
    found = {}
    for path in sorted((ROOT / "insightlib").rglob("*.py")):
        for name in _top_level_imports(path.read_text()):
            found.setdefault(name, str(path.relative_to(ROOT)))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
        for name in _top_level_imports(code):
            found.setdefault(name, str(path.relative_to(ROOT)))
    stdlib = set(sys.stdlib_module_names) | {"insightlib", "__future__"}
    return {name: where for name, where in found.items() if name not in stdlib}


def _declared() -> set[str]:
    """Runtime dependencies by name; an extra such as dask[distributed] declares its package too."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        names.add(_name(requirement))
        extras = re.search(r"\[([^\]]+)\]", requirement)
        if extras:
            names |= {_name(e) for e in extras.group(1).split(",")}
    return names


@functools.cache
def _providers() -> dict[str, list[str]]:
    return md.packages_distributions()


def _distribution(module: str) -> str:
    dists = _providers().get(module)
    assert dists, f"{module} is imported but no installed distribution provides it"
    return _name(dists[0])


def test_every_imported_package_is_declared():
    declared = _declared()
    missing = {}
    for module, where in _imported_modules().items():
        dist = _distribution(module)
        if dist not in declared:
            missing[dist] = where
    assert not missing, f"imported but not declared in pyproject.toml's dependencies: {missing}"


def test_every_declared_package_is_used():
    used = {_distribution(m) for m in _imported_modules()} | set(USED_WITHOUT_IMPORT)
    unused = sorted(_declared() - used)
    assert not unused, f"declared in pyproject.toml but never imported by insightlib or a notebook: {unused}"


def test_the_check_sees_an_undeclared_import(tmp_path):
    """The scanner is not blind: it finds imports inside functions and from-imports."""
    source = "def f():\n    import sklearn.linear_model\n    from networkx import DiGraph\nfrom . import x\n"
    assert _top_level_imports(source) == {"sklearn", "networkx"}
