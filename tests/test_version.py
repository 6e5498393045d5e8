"""The version comes from git tags (setuptools-scm) and every results.json and run manifest records it."""
import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

import insightlib
from insightlib.batch import results

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_dynamic_from_git_with_a_fallback():
    assert "version" not in CONFIG["project"] and "version" in CONFIG["project"]["dynamic"]
    assert any(r.startswith("setuptools-scm") for r in CONFIG["build-system"]["requires"])
    assert Version(CONFIG["tool"]["setuptools_scm"]["fallback_version"])
    Version(insightlib.__version__)  # a PEP 440 version, not a placeholder
    assert insightlib.__version__ != "0.0.0+unknown"


def test_a_copy_without_git_metadata_gets_the_fallback_and_a_clone_without_tags_a_dev_version(tmp_path):
    setuptools_scm = pytest.importorskip("setuptools_scm")
    fallback = CONFIG["tool"]["setuptools_scm"]["fallback_version"]
    bare = tmp_path / "archive"  # what `git archive` or a source tarball gives: no .git
    bare.mkdir()
    shutil.copy(ROOT / "pyproject.toml", bare / "pyproject.toml")
    assert setuptools_scm.get_version(root=str(bare), fallback_version=fallback) == fallback
    if shutil.which("git") is None:
        return
    clone = tmp_path / "clone"  # CI: a clone of main without tags
    clone.mkdir()
    shutil.copy(ROOT / "pyproject.toml", clone / "pyproject.toml")
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    untagged = Version(setuptools_scm.get_version(root=str(clone), fallback_version=fallback))
    assert untagged.is_devrelease and untagged.local  # 0.1.dev1+g<hash>: says which commit
    subprocess.run(git + ["tag", "v0.3.0"], check=True)
    assert setuptools_scm.get_version(root=str(clone), fallback_version=fallback) == "0.3.0"


def test_results_json_records_the_code_version(tmp_path):
    path = results.write_results(tmp_path, notebook="n", la_code="101", parameters={}, data_fingerprint="f",
                                 figures={"km": {}})
    payload = json.loads(path.read_text())
    assert payload["insightlib_version"] == insightlib.__version__
    assert payload["versions"]["insightlib"] == insightlib.__version__
