"""The README's own-data steps, followed literally from a new folder: its shell commands are read out of
README.md and run one after another (the key, validate, load, init-evaluation, run, render), with only
the example paths replaced by a council's extract; and `make demo` never runs an evaluation of your own."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from insightlib.batch.demo import demo_evaluation_files
from insightlib.simulate import synth

ROOT = Path(__file__).resolve().parents[1]
INSIGHT = Path(sys.executable).parent / "insight"


def readme_own_data_commands() -> list[str]:
    """The shell lines of the README's 'Run it on your own data' section, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Run it on your own data", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def test_the_readme_key_command_uses_the_projects_own_insight():
    commands = readme_own_data_commands()
    assert [c.split()[1] for c in commands if c.startswith(".venv/bin/insight")] == [
        "key", "validate", "load", "init-evaluation", "run", "render"]
    assert not any(re.search(r"(^|\s)python3?\s", c) for c in commands)  # no system python anywhere
    assert "export INSIGHT_KEY_FILE=~/secure/insight.key" in commands


@pytest.mark.slow  # a whole run and render, about a minute
def test_the_readmes_own_data_steps_work_from_a_new_folder(tmp_path):
    home, folder = tmp_path / "home", tmp_path / "my-council"
    home.mkdir()
    folder.mkdir()
    # a council's extract: council 873 (the README's example), without synth's markers
    extract = synth.generate(1, 250, 11, folder / "path" / "to" / "extract", la_codes=["873"])
    for marker in ("truth.json", "SYNTHETIC.json"):
        (extract / marker).unlink(missing_ok=True)
    commands = readme_own_data_commands()
    script = "set -e\n" + "\n".join(c.replace(".venv/bin/insight", str(INSIGHT)) for c in commands) + "\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHT_")}
    env["HOME"] = str(home)
    proc = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    key = home / "secure" / "insight.key"
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600
    assert (folder / "path" / "to" / "extract.duckdb").is_file()
    evaluation = yaml.safe_load((folder / "evaluations" / "my-council.yml").read_text())
    assert evaluation["name"] == "my-council" and evaluation["councils"] == ["873"]
    assert evaluation["data"] == "path/to/extract.duckdb"
    assert "synthetic" not in (evaluation["title"] + evaluation["description"]).lower()
    results = json.loads((folder / "reports" / "my-council" / "873" / "results.json").read_text())
    assert results["la_code"] == "873" and results["synthetic"] is False
    assert (folder / "reports" / "_site" / "index.html").is_file()
    assert not list(ROOT.glob("evaluations/my-council.yml"))  # written in the new folder, not the project


def test_init_evaluation_refuses_to_overwrite_and_checks_what_it_writes(tmp_path):
    def init(*args):
        return subprocess.run([str(INSIGHT), "init-evaluation", *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)

    first = init("fgdm-873", "--data", "x.duckdb", "--councils", "873", "--notebook", "intervention_effect",
                 "--intervention", "Family Group Decision Making", "--title", "Did FGDM meetings help? # not a comment")
    assert first.returncode == 0, first.stderr
    written = yaml.safe_load((tmp_path / "evaluations" / "fgdm-873.yml").read_text())
    assert written["title"] == "Did FGDM meetings help? # not a comment"  # text stays text
    assert written["parameters"]["intervention"] == "Family Group Decision Making"
    before = (tmp_path / "evaluations" / "fgdm-873.yml").read_bytes()
    again = init("fgdm-873", "--data", "y.duckdb", "--councils", "352")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (tmp_path / "evaluations" / "fgdm-873.yml").read_bytes() == before
    bad = init("Bad Name", "--data", "x.duckdb", "--councils", "87")
    assert bad.returncode == 2 and "'name' must be" in bad.stderr and "'87' is not a 3-digit council code" in bad.stderr
    assert not (tmp_path / "evaluations" / "Bad Name.yml").exists()


def test_init_evaluation_starts_every_notebook_that_runs_on_a_councils_extract(tmp_path):
    """practice_insight and risk_model_audit too; programme and skills say what to copy instead."""
    def init(*args):
        return subprocess.run([str(INSIGHT), "init-evaluation", *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)

    for name, notebook, shipped in [("practice-873", "practice_insight", "practice.yml"),
                                    ("audit-873", "risk_model_audit", "risk_audit.yml")]:
        made = init(name, "--data", "x.duckdb", "--councils", "873", "--notebook", notebook)
        assert made.returncode == 0, made.stderr
        written = yaml.safe_load((tmp_path / "evaluations" / f"{name}.yml").read_text())
        template = yaml.safe_load((ROOT / "evaluations" / shipped).read_text())
        assert written["notebook"] == notebook and written["councils"] == ["873"] and written["data"] == "x.duckdb"
        assert written["parameters"] == template["parameters"] and written["title"] == template["title"]
    for notebook, words in [("programme_evaluation", "adoption dates"), ("skills_gap", "by area")]:
        refused = init("x", "--data", "x.duckdb", "--councils", "873", "--notebook", notebook)
        assert refused.returncode == 2 and words in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "evaluations" / "x.yml").exists()


def test_make_demo_runs_only_the_demos_evaluations(tmp_path):
    folder = tmp_path / "evaluations"
    shutil.copytree(ROOT / "evaluations", folder)
    shipped = sorted(p.name for p in folder.glob("*.yml"))
    assert [p.name for p in demo_evaluation_files(folder)] == shipped  # every shipped file is the demo's
    subprocess.run([str(INSIGHT), "init-evaluation", "my-council", "--data", "extract.duckdb", "--councils", "873"],
                   cwd=tmp_path, check=True, capture_output=True)
    # the case: a copy of demo.yml with only data: and councils: changed is not the demo's either
    copy = (folder / "demo.yml").read_text().replace("data: data/demo.duckdb", "data: ~/extract.duckdb")
    (folder / "copied.yml").write_text(copy.replace("councils: all", "councils: 873"))
    (folder / "broken.yml").write_text("name: [unclosed\n")
    assert [p.name for p in demo_evaluation_files(folder)] == shipped


def test_insight_key_never_overwrites_a_key_and_warns_inside_a_repository(tmp_path):
    key = tmp_path / "secure" / "insight.key"
    first = subprocess.run([str(INSIGHT), "key", str(key)], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and f"export INSIGHT_KEY_FILE={key}" in first.stdout
    assert len(key.read_text().strip()) == 64 and (key.stat().st_mode & 0o777) == 0o600
    before = key.read_bytes()
    again = subprocess.run([str(INSIGHT), "key", str(key)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr and key.read_bytes() == before
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    inside = subprocess.run([str(INSIGHT), "key", str(tmp_path / "repo" / "k")], capture_output=True, text=True,
                            timeout=60)
    assert inside.returncode == 0 and "inside the git work tree" in inside.stderr
