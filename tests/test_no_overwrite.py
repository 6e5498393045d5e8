"""No command overwrites or deletes a file it did not create: synth, demo, load and render refuse
(exit 2, one sentence saying what is there and how to proceed) and touch nothing."""

from __future__ import annotations

import os
import stat

import pytest
from typer.testing import CliRunner

from fixtures.tiny import write_valid_directory
from insightlib.batch import quarto, site, site_pages
from insightlib.simulate import synth
from insightlib.batch.cli import EXIT_BAD_INPUT, app
from insightlib.errors import InputError
from fake_quarto import write_fake_quarto
from test_site import build_small, skip_trend

KEY = "a-test-key-that-is-long-enough-0123456789"


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def one_line(text: str) -> str:
    return " ".join(text.split())


# --- synth and demo -----------------------------------------------------------------------------


def test_synth_refuses_an_extract_it_did_not_write(tmp_path):
    real = write_valid_directory(tmp_path / "extract")
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    result = invoke("synth", "--out", real, "--councils", 1, "--children", 20)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    message = one_line(result.output)
    assert "already holds an extract that insight synth did not write" in message and "--force" in message
    assert "allocations.csv, assessments.csv, children.csv and 4 more" in message  # what is there
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before  # nothing replaced, nothing added
    # --force is the user's explicit say-so
    forced = invoke("synth", "--out", real, "--councils", 1, "--children", 20, "--force")
    assert forced.exit_code == 0, forced.output
    assert (real / "referrals.csv").read_bytes() != before["referrals.csv"] and synth.made_by_synth(real)


def test_synth_replaces_its_own_data_and_never_leaves_two_formats(tmp_path):
    out = tmp_path / "demo"
    assert invoke("synth", "--out", out, "--councils", 1, "--children", 20).exit_code == 0
    again = invoke("synth", "--out", out, "--councils", 1, "--children", 20, "--seed", 7, "--format", "parquet")
    assert again.exit_code == 0, again.output
    assert sorted(p.suffix for p in out.iterdir() if p.name not in ("truth.json", "SYNTHETIC.json")) == [".parquet"] * 7
    (out / "notes.txt").write_text("mine")  # a file synth never writes is never touched
    assert invoke("synth", "--out", out, "--councils", 1, "--children", 20).exit_code == 0
    assert (out / "notes.txt").read_text() == "mine"


def test_synth_refuses_a_folder_that_only_has_a_foreign_truth_file(tmp_path):
    (tmp_path / "truth.json").write_text('{"mine": true}')
    with pytest.raises(InputError, match="truth.json"):
        synth.generate(1, 20, 1, tmp_path)
    assert (tmp_path / "truth.json").read_text() == '{"mine": true}'
    with pytest.raises(InputError, match="is a file, not a folder"):
        synth.generate(1, 20, 1, tmp_path / "truth.json", force=True)


def test_demo_refuses_an_extract_before_doing_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INSIGHT_KEY", raising=False)
    monkeypatch.delenv("INSIGHT_KEY_FILE", raising=False)
    real = write_valid_directory(tmp_path / "data" / "demo")
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    result = invoke("demo", "--data", real, "--councils", 1, "--children", 20, "--out", tmp_path / "reports")
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "insight synth did not write" in one_line(result.output) and "--force" in result.output
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before
    assert not (tmp_path / ".insight").exists() and not (tmp_path / "reports").exists()


# --- load -------------------------------------------------------------------------------------


def test_load_refuses_to_replace_a_file_that_is_not_a_warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    d = write_valid_directory(tmp_path / "extract")
    source = d / "referrals.csv"
    before = source.read_bytes()
    result = invoke("load", d, "-w", source)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    message = one_line(result.output)
    assert "is not a warehouse made by 'insight load'" in message and "-w" in message
    assert source.read_bytes() == before
    assert not [p.name for p in d.iterdir() if p.name.startswith(".")]  # no temporary file either
    folder = tmp_path / "afolder"
    folder.mkdir()
    result = invoke("load", d, "-w", folder)
    assert result.exit_code == EXIT_BAD_INPUT and "is a folder" in one_line(result.output)
    # a warehouse insight made is replaced by the next load, as before
    target = tmp_path / "w.duckdb"
    assert invoke("load", d, "-w", target).exit_code == 0
    assert invoke("load", d, "-w", target).exit_code == 0


def test_default_warehouse_names_never_collide(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    a = write_valid_directory(tmp_path / "extract.2024")
    b = write_valid_directory(tmp_path / "extract.2025")
    assert invoke("load", a).exit_code == 0
    first = (tmp_path / "extract.2024.duckdb").read_bytes()
    assert invoke("load", str(b) + os.sep).exit_code == 0  # a trailing slash changes nothing
    assert (tmp_path / "extract.2025.duckdb").exists()
    assert (tmp_path / "extract.2024.duckdb").read_bytes() == first
    assert not (tmp_path / "extract.duckdb").exists()


# --- render -----------------------------------------------------------------------------------


@pytest.fixture
def fake_quarto(tmp_path, monkeypatch):
    """A stand-in quarto that builds a one-page _site, so the Quarto path runs where quarto is absent."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "quarto"
    write_fake_quarto(bindir)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    return script


@pytest.mark.parametrize("name", ["_quarto.yml", "index.qmd", "_insight_safe.lua"])
def test_render_leaves_a_users_own_quarto_files_alone_and_refuses_a_site_it_did_not_write(
        name, tmp_path, fake_quarto, monkeypatch):
    reports = build_small(tmp_path / "reports")
    monkeypatch.chdir(tmp_path)
    own = reports / name
    own.write_text("project:\n  type: book\n" if name == "_quarto.yml" else "---\ntitle: Our own home page\n---\n")
    before = own.read_text()
    mine = reports / "_site"
    mine.mkdir()
    (mine / "page.html").write_text("our own site")
    result = invoke("render", reports)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    message = one_line(result.output)
    assert "holds _site/ that 'insight render' did not write" in message and "--force" in message
    assert own.read_text() == before and (mine / "page.html").read_text() == "our own site"
    assert not (reports / "_site_src").exists()  # nothing of the project was written either
    (mine / "page.html").unlink()  # their site moved away: render builds, and still leaves their file alone
    built = invoke("render", reports)
    assert built.exit_code == 0, built.output
    assert own.read_text() == before and (reports / "_site_src" / "_quarto.yml").exists()
    assert (reports / "_site" / site_pages.MARKER).exists() and (reports / "_site_src" / site_pages.MARKER).exists()


def test_render_refuses_a_project_folder_it_did_not_write(tmp_path, fake_quarto, monkeypatch):
    reports = build_small(tmp_path / "reports")
    monkeypatch.chdir(tmp_path)
    theirs = reports / "_site_src"
    theirs.mkdir()
    (theirs / "notes.qmd").write_text("our own page")
    result = invoke("render", reports)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "holds _site_src/ that 'insight render' did not write" in one_line(result.output)
    assert (theirs / "notes.qmd").read_text() == "our own page" and not (reports / "_site").exists()
    forced = invoke("render", reports, "--force")
    assert forced.exit_code == 0, forced.output
    assert not (theirs / "notes.qmd").exists() and (theirs / site_pages.MARKER).exists()


def test_render_replaces_only_what_it_wrote_before(tmp_path, fake_quarto, monkeypatch):
    reports = build_small(tmp_path / "reports")
    monkeypatch.chdir(tmp_path)
    top = sorted(p.name for p in reports.iterdir())
    assert invoke("render", reports).exit_code == 0
    assert sorted(p.name for p in reports.iterdir()) == sorted(top + ["_site", "_site_src"])  # nothing else written
    assert (reports / "_site" / site_pages.MARKER).exists()
    for name in quarto.PROJECT_FILES:
        text = (reports / "_site_src" / name).read_text()
        if name == quarto.SAFE_FILTER:
            assert text == (site_pages._templates_dir() / "insight_safe.lua").read_text()
        else:
            assert text.startswith(site_pages.GENERATED) or site_pages.WRITTEN in text[:300], name
    again = invoke("render", reports)  # its own files and site: replaced without a question
    assert again.exit_code == 0, again.output
    # a site folder that is someone else's Quarto site (site_libs, no marker) is not insight's
    (reports / "_site" / site_pages.MARKER).unlink()
    result = invoke("render", reports)
    assert result.exit_code == EXIT_BAD_INPUT and "holds _site/ that" in one_line(result.output)


def test_render_removes_the_project_files_an_earlier_version_wrote_at_the_top(tmp_path, fake_quarto, monkeypatch):
    """Earlier versions wrote _quarto.yml, index.qmd ... at the top of the reports folder: removed where
    provably theirs (a user's file beside them is kept)."""
    reports = build_small(tmp_path / "reports")
    monkeypatch.chdir(tmp_path)
    (reports / "_quarto.yml").write_text(site_pages.GENERATED + "\nproject:\n  type: website\n")
    (reports / "index.qmd").write_text("---\n" + site_pages.WRITTEN + "\ntitle: Home\n---\n")
    (reports / "national.qmd").write_text("---\ntitle: a page of the user's own\n---\n")
    assert invoke("render", reports).exit_code == 0
    assert not (reports / "_quarto.yml").exists() and not (reports / "index.qmd").exists()
    assert (reports / "national.qmd").read_text() == "---\ntitle: a page of the user's own\n---\n"


def test_html_render_never_empties_a_site_folder_it_did_not_write(tmp_path, monkeypatch):
    reports = build_small(tmp_path / "reports")
    monkeypatch.setattr(site.shutil, "which", lambda name: None)
    theirs = reports / "_site"
    (theirs / "site_libs").mkdir(parents=True)
    (theirs / "index.html").write_text("a Quarto site someone else built")
    result = invoke("render", reports)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "did not write" in one_line(result.output) and "--force" in result.output
    assert (theirs / "index.html").read_text() == "a Quarto site someone else built"
    assert invoke("render", reports, "--force").exit_code == 0
    assert (theirs / site_pages.MARKER).exists() and "a Quarto site" not in (theirs / "index.html").read_text()
