"""The fallback site drawn on two processes is the site drawn on one, byte for byte (but the time it was built)."""

from __future__ import annotations

import base64
import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from insightlib.batch import site, site_html, site_pool
from test_site import build_reports, make_report, skip_trend

SPEC = importlib.util.spec_from_file_location(
    "compare_site", Path(__file__).resolve().parents[1] / "scripts" / "compare_site.py"
)
compare_site = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compare_site)


def _reports(root: Path) -> Path:
    build_reports(root)
    make_report(root, "fgc", "205", title="Family Group Conferences")
    make_report(root, "fgc", "206", title="Family Group Conferences")
    broken = root / "fgc" / "206" / "rereferral.ipynb"
    broken.write_bytes(broken.read_bytes()[:500])  # cut short: left out, and the evaluation's page drawn without it
    return root


def _render(tmp_path: Path, name: str, workers: int):
    folder = tmp_path / name
    shutil.copytree(tmp_path / "reports", folder)
    return folder, site.render_site(folder, engine="html", workers=workers)


def test_two_workers_draw_the_same_site_as_one(tmp_path, monkeypatch):
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    _reports(tmp_path / "reports")
    one_dir, one = _render(tmp_path, "one", 1)
    two_dir, two = _render(tmp_path, "two", 2)
    assert compare_site.compare(one_dir / "_site", two_dir / "_site") == []
    assert len(compare_site.files(one_dir / "_site")) > 10
    assert [p.relative_to(one_dir) for p in one.pages] == [p.relative_to(two_dir) for p in two.pages]
    assert [r.href for r in one.reports] == [r.href for r in two.reports]
    assert [p.relative_to(one_dir) for p in one.skipped] == [p.relative_to(two_dir) for p in two.skipped]
    assert [m.replace(str(one_dir), "") for m in one.messages] == [m.replace(str(two_dir), "") for m in two.messages]
    assert [p.relative_to(one_dir) for p in one.skipped] == [Path("fgc/206/rereferral.ipynb")]
    listing = (two_dir / "_site" / "fgc" / "index.html").read_text()
    assert 'href="205/' in listing and 'href="206/' not in listing
    assert not (two_dir / "_site" / "fgc" / "206").exists()


def test_the_compare_script_sees_a_changed_page(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for side in (a, b):
        side.mkdir()
        (side / "index.html").write_bytes(b"<p>Built 02 December 2026 01:55 UTC from notebooks</p>")
    (b / "index.html").write_bytes(b"<p>Built 02 December 2026 02:10 UTC from notebooks</p>")  # only the time
    assert compare_site.compare(a, b) == []
    (b / "extra.png").write_bytes(b"x")
    (b / "index.html").write_bytes(b"<p>Built 02 December 2026 02:10 UTC from notebook</p>")
    assert compare_site.compare(a, b) == [f"only in {b}: extra.png", "differs: index.html"]


def test_workers_setting(monkeypatch):
    monkeypatch.setenv(site_pool.WORKERS_ENV, "3")
    assert site_pool.render_workers(10) == 3
    assert site_pool.render_workers(2) == 2
    assert site_pool.render_workers(10, workers=1) == 1
    monkeypatch.setenv(site_pool.WORKERS_ENV, "none")
    assert 1 <= site_pool.render_workers(100) <= len(__import__("os").sched_getaffinity(0))


@pytest.mark.parametrize("image", ["base64", "markup"])
def test_images_set_aside_give_the_same_page(tmp_path, monkeypatch, image):
    """nbconvert's page with images swapped for tokens and put back is its page with the images in place;
    a value that is not base64 (here an attempt at markup) is never set aside, so it is escaped as before."""
    png = base64.encodebytes(b"\x89PNG" + bytes(range(256)) * 3).decode("ascii")  # with newlines, as stored
    value = png if image == "base64" else png[:80] + '"><script>alert(1)</script>'
    output = new_output(
        "display_data",
        data={"image/png": value, "text/plain": "fallback"},
        metadata={"image/png": {"alt": "a chart", "narrow": value}},
    )
    nb = new_notebook(cells=[new_markdown_cell("# Title\n\ntext"), new_code_cell("x", outputs=[output])])
    path = tmp_path / "report.ipynb"
    nbformat.write(nb, str(path))
    assert len(site_html._set_images_aside(nbformat.read(str(path), as_version=4))) == (2 if image == "base64" else 0)
    title, body = site_html.render_report_html(path)
    monkeypatch.setattr(site_html, "_set_images_aside", lambda nb: {})
    assert (title, body) == site_html.render_report_html(path)
    assert "insightimage" not in body and "<script>" not in body
    if image == "base64":
        assert body.count(png) == 2
