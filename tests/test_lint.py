"""ruff (configured in pyproject.toml) finds nothing in insightlib/: no undefined or unused names, no dead code."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean_on_the_package():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.fail("ruff is a dev dependency (pip install -e '.[dev]')")
    out = subprocess.run([ruff, "check", "--no-cache", "insightlib"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_pre_commit_runs_ruff_nbstripout_and_a_secrets_check():
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"] for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "nbstripout", "gitleaks"} <= hooks
    assert all(repo.get("rev") for repo in config["repos"])  # pinned, so every clone runs the same checks


def test_notebooks_are_committed_without_outputs():
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name


#: Every module is kept in ruff's format (.pre-commit-config.yaml formats the same files).
#: (_version.py is written by setuptools-scm at install, not by us: ruff's config excludes it.)
FORMATTED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "insightlib").rglob("*.py") if p.name != "_version.py")


def test_formatted_modules_stay_formatted():
    import re

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    out = subprocess.run([ruff, "format", "--check", *FORMATTED], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    pattern = re.search(r"id: ruff-format.*?files: (\S+)", config, re.S).group(1)
    assert all(re.match(pattern, f) for f in FORMATTED)
