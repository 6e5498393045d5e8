"""The two install routes (pip via pyproject.toml, conda via environment.yml) must not drift apart."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: conda-forge splits dask[distributed] into two packages.
CONDA_NAMES = {"dask[distributed]": {"dask", "distributed"}}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    expected = set()
    for name in pip_names:
        expected |= CONDA_NAMES.get(name, {name})
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_names = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    conda_names -= {"python", "pip", "quarto"}
    assert conda_names == expected, (
        f"only in environment.yml: {sorted(conda_names - expected)}; only in pyproject.toml: {sorted(expected - conda_names)}"
    )
    assert "quarto" in {_name(d) for d in env["dependencies"] if isinstance(d, str)}


def test_version_bounds_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_specs = {_name(r): r[len(_name(r)):].strip() for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_specs = {_name(d): d[len(_name(d)):].strip() for d in env["dependencies"] if isinstance(d, str)}
    for name, spec in pip_specs.items():
        for conda_name in CONDA_NAMES.get(name, {name}):
            assert conda_specs[conda_name] == spec.replace("[distributed]", ""), name


def test_shipped_reference_data_matches_its_sources_note():
    ref = ROOT / "insightlib" / "reference"
    for name in ("local_authorities.csv", "rereferral_rates_by_la.csv", "statistical_neighbours_2025.csv", "SOURCES.md"):
        assert (ref / name).exists(), name
    shared = ROOT.parent / "shared" / "reference"
    if shared.exists():
        for name in ("local_authorities.csv", "rereferral_rates_by_la.csv", "statistical_neighbours_2025.csv"):
            assert (ref / name).read_bytes() == (shared / name).read_bytes(), f"{name} differs from ../shared"


def test_notebooks_are_committed_without_outputs():
    import json

    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{path.name} has outputs"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


def test_notebooks_are_thin_over_the_library():
    """Analysis logic lives in insightlib, where it is tested: notebooks define nothing and stay short."""
    import ast
    import json

    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        assert any("insightlib" in src for src in code), f"{path.name} never calls insightlib"
        for src in code:
            tree = ast.parse("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
            defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
            assert not defined, f"{path.name} defines {defined[0].name}: move it into insightlib"
            assert len(src.splitlines()) <= 25, f"{path.name} has a {len(src.splitlines())}-line cell: move logic into insightlib"
