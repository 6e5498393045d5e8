"""Loading in batches of councils (issue 17 item 3) changes nothing: the same problems as ``insight validate``
(messages, files, rows, rules, in its order), the same councils loaded or left out, the same rows, pseudonyms
and fingerprints, whether the councils go in one batch or one by one, in this process or in two workers."""

from __future__ import annotations

import csv

import duckdb
import pytest

from insightlib.ingest import load_stream, warehouse
from insightlib.ingest.validate import check_directory, validate_directory
from insightlib.simulate import synth

KEY = "a-test-key-that-is-long-enough-0123456789"


def _edit(path, changes):
    """Set cells of a CSV: {(data row counting from 1, column): value}."""
    rows = list(csv.reader(path.open()))
    for (row, column), value in changes.items():
        rows[row][rows[0].index(column)] = value
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.fixture(scope="module")
def extract(tmp_path_factory):
    """Five councils, three with problems: rows that can be left out, and a council's own bad extract date."""
    data = synth.generate(5, 50, 11, tmp_path_factory.mktemp("load") / "data")
    codes = sorted(r["la_code"] for r in csv.DictReader((data / "councils.csv").open()))
    rows = {
        la: [i + 1 for i, r in enumerate(csv.DictReader((data / "referrals.csv").open())) if r["la_code"] == la]
        for la in codes
    }
    _edit(
        data / "referrals.csv",
        {
            (rows[codes[1]][2], "closure_date"): "1999-01-01",
            (rows[codes[3]][0], "referral_source"): "ZZ",
            (rows[codes[3]][4], "referral_date"): "2021-02-30",
        },
    )
    _edit(data / "councils.csv", {(5, "extract_date"): "not a date"})
    return data, codes


def _contents(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        out = {}
        for name in names:
            if name == "_insight_load":
                rows = con.execute(f"SELECT * FROM \"{name}\" WHERE name NOT IN ('loaded_at')").fetchall()
            elif name == "_insight_councils":
                rows = con.execute(f'SELECT la_code, fingerprint, rows FROM "{name}"').fetchall()
            else:
                rows = con.execute(f'SELECT * FROM "{name}"').fetchall()
            out[name] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


@pytest.mark.parametrize("skip", [False, True])
def test_batches_and_workers_load_what_one_pass_loads_and_report_what_validate_reports(
    extract, tmp_path, monkeypatch, skip
):
    data, codes = extract
    want = validate_directory(data)
    assert {p.la_code for p in want.problems} == {codes[1], codes[3], codes[4]}
    results = []
    for batch_rows, workers in ((10**9, "1"), (1, "1"), (1, "2"), (700, "2")):
        monkeypatch.setattr(load_stream, "BATCH_ROWS", batch_rows)
        monkeypatch.setenv("INSIGHT_LOAD_WORKERS", workers)
        target = tmp_path / f"{batch_rows}-{workers}.duckdb"
        summary = warehouse.load_directory(data, target, key=KEY, skip_invalid_rows=skip)
        assert summary.problems == want.problems
        assert summary.report.format_text(None) == want.format_text(None)
        results.append((summary.loaded, sorted(summary.failed), summary.rows, summary.left_out, _contents(target)))
    assert results[0][0] == ([codes[0], codes[1], codes[2], codes[3]] if skip else [codes[0], codes[2]])
    assert all(r == results[0] for r in results[1:])
    assert not list(tmp_path.glob(".insight-load-*")) and not list(tmp_path.glob(".*.tmp"))


def _same_report(got, want):
    assert got.problems == want.problems
    assert got.format_text(None) == want.format_text(None)
    assert got.to_dict() == want.to_dict()
    assert got.rows == want.rows and sum(want.rows.values()) > 0


def test_validate_in_batches_reports_what_one_pass_reports(extract, monkeypatch):
    """``insight validate`` checks a national extract a few councils at a time: the same problems, clean
    councils, rows and text as one pass over the whole extract, in one batch or many, in one process or two."""
    data, codes = extract
    want = validate_directory(data)
    assert want.problems and want.clean_councils == [codes[0], codes[2]]
    for batch_rows, workers in ((10**9, "1"), (1, "1"), (1, "2"), (700, "2")):
        monkeypatch.setattr(load_stream, "BATCH_ROWS", batch_rows)
        monkeypatch.setenv("INSIGHT_LOAD_WORKERS", workers)
        got = check_directory(data)
        _same_report(got, want)
        assert got.clean_councils == want.clean_councils
        assert set(got.typed) == set(want.typed) and all(len(t) == 0 for n, t in got.typed.items() if n != "councils")


def test_a_failed_batched_load_leaves_the_warehouse_as_it_was(extract, tmp_path, monkeypatch):
    data, codes = extract
    monkeypatch.setattr(load_stream, "BATCH_ROWS", 1)
    monkeypatch.setenv("INSIGHT_LOAD_WORKERS", "2")
    target = tmp_path / "w.duckdb"
    warehouse.load_directory(data, target, key=KEY)
    before = target.read_bytes()

    def broken(tables):
        yield from []
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(load_stream, "read_spooled", broken)  # the disk fills while a batch is written
    with pytest.raises(warehouse.InputError, match="The disk is full"):
        warehouse.load_directory(data, target, key=KEY)
    assert target.read_bytes() == before
    assert not list(tmp_path.glob(".insight-load-*")) and not list(tmp_path.glob(".*.tmp"))


def test_a_broken_file_in_a_councils_folder_stops_only_that_council(tmp_path):
    data = synth.generate(3, 40, 12, tmp_path / "tables")
    folders = tmp_path / "folders"
    codes = sorted(r["la_code"] for r in csv.DictReader((data / "councils.csv").open()))
    for la in codes:
        (folders / la).mkdir(parents=True)
        for path in sorted(data.glob("*.csv")):
            rows = list(csv.reader(path.open()))
            keep = [rows[0]] + [r for r in rows[1:] if r[rows[0].index("la_code")] == la]
            with (folders / la / path.name).open("w", newline="") as fh:
                csv.writer(fh).writerows(keep)
    (folders / codes[1] / "referrals.csv").write_bytes("la_code,referral_id\n1,caf\xe9\n".encode("latin-1"))
    (folders / codes[2] / "plans.csv").write_text("la_code,child_id\n" + codes[2] + ",x\n")
    report = validate_directory(folders)
    _same_report(check_directory(folders), report)
    assert not report.unattributed
    assert {p.la_code for p in report.problems} == set(codes[1:])  # without its referrals, its plans name none
    assert {(p.la_code, p.file, p.rule) for p in report.problems if p.row is None} >= {
        (codes[1], f"{codes[1]}/referrals.csv", "wrong encoding"),
        (codes[2], f"{codes[2]}/plans.csv", "missing column"),
    }
    summary = warehouse.load_directory(folders, tmp_path / "w.duckdb", key=KEY)
    assert summary.loaded == [codes[0]] and sorted(summary.failed) == codes[1:]
    assert summary.problems == report.problems


@pytest.mark.parametrize("where", ["a row naming no council", "a missing column"])
def test_problems_that_stop_every_council_are_validates_and_nothing_is_written(tmp_path, monkeypatch, where):
    data = synth.generate(3, 30, 13, tmp_path / "data")
    if where == "a row naming no council":
        _edit(data / "plans.csv", {(2, "la_code"): ""})
    else:
        rows = [r[1:] for r in csv.reader((data / "interventions.csv").open())]  # no la_code column
        with (data / "interventions.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    _edit(data / "referrals.csv", {(4, "closure_date"): "1999-01-01"})
    monkeypatch.setattr(load_stream, "BATCH_ROWS", 1)
    monkeypatch.setenv("INSIGHT_LOAD_WORKERS", "2")
    with pytest.raises(warehouse.InputError) as err:
        warehouse.load_directory(data, tmp_path / "w.duckdb", key=KEY)
    want = validate_directory(data)
    assert want.unattributed and len({p.la_code for p in want.problems}) == 2
    got = check_directory(data)
    assert got.problems == want.problems and got.format_text(None) == want.format_text(None)
    assert str(err.value) == f"Cannot load {data}: these problems stop every council.\n\n" + want.format_text()
    assert list(tmp_path.iterdir()) == [data]
