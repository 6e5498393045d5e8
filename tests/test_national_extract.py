"""A national extract loads fast without changing what is loaded (issue 17 item 3): the pseudonyms are the
keyed HMACs they always were, every council's fingerprint is the one computed council by council, and one
folder per council loads exactly as one file per table. The timings are in benchmarks/loading.py."""

from __future__ import annotations

import csv
import hmac
import random
import shutil

import pandas as pd
import pytest

from insightlib.ingest import fingerprint, pseudonymise, warehouse
from insightlib.simulate import synth

KEY = "a-test-key-that-is-long-enough-0123456789"


@pytest.mark.parametrize("key", [b"k" * 16, b"a-64-byte-key-".ljust(64, b"x"), b"a-key-longer-than-a-block-" * 4])
def test_pseudonyms_are_the_keyed_hmac_each_value_had_before(key):
    rng = random.Random(3)
    values = [rng.choice(["C", "é", "☃", "R/"]) + str(rng.randrange(3000)) for _ in range(20_000)] + ["", None]
    councils = [rng.choice(["201", "202", "935"]) for _ in values]
    got = pseudonymise.pseudonymise_series(pd.Series(values, dtype=object), pd.Series(councils), "child_id", key)
    want = [
        "c_" + hmac.new(key, f"{la}\x1fchild_id\x1f{v}".encode(), "sha256").hexdigest()[:16] if v else None
        for v, la in zip(values, councils)
    ]
    assert [None if x is pd.NA else x for x in got.tolist()] == want
    assert want[:50] == [
        pseudonymise.pseudonymise_value(v, "child_id", la, key) for v, la in zip(values[:50], councils)
    ]


def test_every_councils_fingerprint_at_once_equals_each_councils_own():
    frame = pd.DataFrame(
        {
            "la_code": ["201", "202", "201", "202", "201"],
            "child_id": ["c_1", None, "c_3", "c_1", ""],
            "date_of_birth": pd.to_datetime(["2010-01-02", None, "2012-03-04", "2010-01-02", "2011-05-06"]),
            "flag": [True, False, True, True, False],
        }
    )
    frame["child_id"] = frame["child_id"].astype(pseudonymise.STR)
    columns, dates = (
        {"t": ["la_code", "child_id", "date_of_birth", "flag"], "empty": ["la_code"]},
        {"t": ["date_of_birth"]},
    )
    tables = {"t": frame, "empty": frame.iloc[:0][["la_code"]]}
    at_once = fingerprint.rows_fingerprints(tables, columns, dates, "v1", ["201", "202", "999"])
    for la in ("201", "202", "999"):
        own = {n: f[(f["la_code"] == la).to_numpy(dtype=bool)] for n, f in tables.items()}
        assert at_once[la] == fingerprint.rows_fingerprint(own, columns, dates, "v1")
    object_text = dict(tables, t=frame.astype({"child_id": object}))
    assert fingerprint.rows_fingerprints(object_text, columns, dates, "v1", ["201", "202", "999"]) == at_once


def _as_folders(data, folders):
    """The synthetic extract cut into one folder per council, as a national extract may come."""
    folders.mkdir()
    tables = {p.name: pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(data.glob("*.csv"))}
    for la in tables["councils.csv"]["la_code"]:
        (folders / la).mkdir()
        for name, frame in tables.items():
            frame[frame["la_code"] == la].to_csv(folders / la / name, index=False)
    shutil.copy(data / warehouse.SYNTHETIC_FILE, folders / warehouse.SYNTHETIC_FILE)
    return tables["councils.csv"]["la_code"].tolist()


def test_one_folder_per_council_loads_as_one_file_per_table(tmp_path):
    data = synth.generate(3, 60, 5, tmp_path / "tables")
    codes = _as_folders(data, tmp_path / "folders")
    a = warehouse.load_directory(data, tmp_path / "a.duckdb", key=KEY)
    b = warehouse.load_directory(tmp_path / "folders", tmp_path / "b.duckdb", key=KEY)
    assert a.loaded == b.loaded == sorted(codes) and a.rows == b.rows and not b.failed
    meta_a, meta_b = warehouse.load_metadata(tmp_path / "a.duckdb"), warehouse.load_metadata(tmp_path / "b.duckdb")
    assert {la: c["fingerprint"] for la, c in meta_a["councils"].items()} == {
        la: c["fingerprint"] for la, c in meta_b["councils"].items()
    }
    assert meta_b["synthetic"] is True and f"{codes[0]}/referrals.csv" in meta_b["files"]
    for la in codes:
        for name, frame in warehouse.read_council(tmp_path / "a.duckdb", la).items():
            other = warehouse.read_council(tmp_path / "b.duckdb", la)[name]
            pd.testing.assert_frame_equal(
                frame.sort_values(list(frame.columns)).reset_index(drop=True),
                other.sort_values(list(other.columns)).reset_index(drop=True),
            )
        stored = meta_b["councils"][la]["rows"]
        assert stored == {n: len(f) for n, f in warehouse.read_council(tmp_path / "b.duckdb", la).items()}


def test_a_problem_in_one_councils_folder_names_the_folder_and_leaves_the_others(tmp_path):
    data = synth.generate(2, 40, 6, tmp_path / "tables")
    codes = _as_folders(data, tmp_path / "folders")
    path = tmp_path / "folders" / codes[1] / "referrals.csv"
    rows = list(csv.reader(path.open()))
    rows[3][rows[0].index("closure_date")] = "1999-01-01"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    summary = warehouse.load_directory(tmp_path / "folders", tmp_path / "w.duckdb", key=KEY)
    assert summary.loaded == [codes[0]] and list(summary.failed) == [codes[1]]
    (problem,) = summary.failed[codes[1]]
    assert (
        problem.file == f"{codes[1]}/referrals.csv" and problem.row == 3 and problem.rule == "closure before referral"
    )
    assert problem.message.startswith(f"{codes[1]}/referrals.csv row 3, closure_date: the case closes (1999-01-01)")
    trimmed = warehouse.load_directory(tmp_path / "folders", tmp_path / "t.duckdb", key=KEY, skip_invalid_rows=True)
    assert trimmed.loaded == sorted(codes)
    assert [(r["la_code"], r["rule"], r["rows"], r["files"]) for r in trimmed.left_out][0] == (
        codes[1],
        "closure before referral",
        1,
        f"{codes[1]}/referrals.csv",
    )
