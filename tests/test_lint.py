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


#: Modules kept in ruff's format (the rest follow as they are next rewritten; .pre-commit-config.yaml formats the same).
FORMATTED = ["insightlib/stats/survival.py", "insightlib/stats/cox.py", "insightlib/stats/competing_risks.py",
             "insightlib/stats/multiple_testing.py", "insightlib/stats/propensity.py", "insightlib/stats/effects.py",
             "insightlib/stats/refuters.py", "insightlib/simulate/survival.py", "insightlib/simulate/intervention.py",
             "insightlib/report/words.py", "insightlib/report/labels.py", "insightlib/report/survival_words.py",
             "insightlib/ingest/files.py", "insightlib/ingest/xlsx.py", "insightlib/ingest/cin_census.py",
             "insightlib/ingest/annex_a.py", "insightlib/ingest/directory.py",
             "insightlib/stats/did.py", "insightlib/stats/did_randomisation.py", "insightlib/stats/timeseries.py",
             "insightlib/analyses/programme.py", "insightlib/analyses/programme_panel.py",
             "insightlib/analyses/programme_parameters.py", "insightlib/analyses/programme_councils.py",
             "insightlib/report/programme.py", "insightlib/report/programme_councils.py",
             "insightlib/report/programme_charts.py",
             "insightlib/stats/funnel.py", "insightlib/analyses/national.py", "insightlib/report/national.py",
             "insightlib/report/national_charts.py", "insightlib/simulate/synth.py", "insightlib/simulate/synth_model.py",
             "insightlib/simulate/renewal.py", "insightlib/simulate/synth_truth.py", "insightlib/simulate/synth_tables.py",
             "insightlib/ingest/published.py", "insightlib/ingest/fingerprint.py",
             *(f"insightlib/batch/{m}.py" for m in ("runner", "plan", "execute", "kernels", "manifest", "site",
                                                   "site_reports", "site_pages", "site_html", "quarto", "quarto_pages"))]


def test_formatted_modules_stay_formatted():
    import re

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    out = subprocess.run([ruff, "format", "--check", *FORMATTED], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    pattern = re.search(r"id: ruff-format.*?files: (\S+)", config, re.S).group(1)
    assert all(re.match(pattern, f) for f in FORMATTED)
