"""Warehouse: atomic loads, pseudonymisation, one bad council left out, read-only reads."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ProcessPoolExecutor

import duckdb
import pandas as pd
import pytest

from fixtures.tiny import identifiers, tables, write_valid_directory
from insightlib import contract
from insightlib.ingest import pseudonymise, warehouse, warehouse_write
from insightlib.errors import InputError
from insightlib.ingest.validate import validate_directory

KEY = b"test-key-0123456789abcdef-not-secret"


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch):
    monkeypatch.delenv("INSIGHT_KEY", raising=False)
    monkeypatch.delenv("INSIGHT_KEY_FILE", raising=False)


@pytest.fixture
def loaded(tmp_path):
    d = write_valid_directory(tmp_path / "data")
    wh = tmp_path / "wh" / "warehouse.duckdb"
    summary = warehouse.load_directory(d, wh, key=KEY)
    return d, wh, summary


def test_good_directory_round_trips(loaded):
    d, wh, summary = loaded
    assert summary.loaded == ["201", "202"] and summary.failed == {}
    assert summary.rows == {"councils": 2, "children": 6, "referrals": 8, "assessments": 4, "plans": 4,
                            "interventions": 2, "allocations": 4}
    assert warehouse.is_warehouse(wh) and warehouse.council_codes(wh) == ["201", "202"]
    typed = validate_directory(d).tables
    expected = pseudonymise.pseudonymise_tables(typed, KEY)
    for la in ("201", "202"):
        got = warehouse.read_council(wh, la)
        assert set(got) == set(contract.TABLES)
        for name, spec in contract.TABLES.items():
            frame = got[name]
            assert list(frame.columns) == list(spec.columns)
            for c in spec.dates:
                assert frame[c].dtype == "datetime64[ns]", (name, c)
            want = expected[name][expected[name]["la_code"] == la].reset_index(drop=True)
            for c in want.columns:  # pseudonyms are Arrow strings; read back as str/None
                if isinstance(want[c].dtype, pd.StringDtype):
                    want[c] = want[c].to_numpy(dtype=object, na_value=None)
            pd.testing.assert_frame_equal(frame.reset_index(drop=True), want, check_dtype=False)
        assert got["referrals"]["referral_nfa"].dtype == bool


def test_many_councils_read_in_one_query_equal_their_reads_one_at_a_time(loaded):
    """The national report reads every council at once (warehouse_read.read_councils): the same rows, order, types."""
    from insightlib.ingest.warehouse_read import read_councils

    _d, wh, _summary = loaded
    for order in (["201", "202"], ["202", "201"]):
        together = read_councils(wh, order)
        for name in contract.TABLES:
            one_by_one = pd.concat([warehouse.read_council(wh, la)[name] for la in order], ignore_index=True)
            pd.testing.assert_frame_equal(together[name], one_by_one, check_exact=True)
            assert list(dict.fromkeys(together[name]["la_code"])) == [la for la in order if la in set(one_by_one["la_code"])]
    with pytest.raises(InputError, match="Council 999 is not in the warehouse"):
        read_councils(wh, ["201", "999"])


def test_every_councils_fingerprint_in_one_query_equals_each_asked_alone(loaded):
    from insightlib.ingest.warehouse_read import data_fingerprints

    _d, wh, _summary = loaded
    assert data_fingerprints(wh) == {la: warehouse.data_fingerprint(wh, la) for la in ("201", "202")}


def test_absent_optional_tables_come_back_empty_with_their_columns(tmp_path):
    t = tables()
    for name in ("assessments", "plans", "interventions", "allocations"):
        del t[name]
    wh = tmp_path / "w.duckdb"
    warehouse.load_directory(write_valid_directory(tmp_path / "d", t), wh, key=KEY)
    got = warehouse.read_council(wh, "201")
    assert got["plans"].empty and list(got["plans"].columns) == list(contract.TABLES["plans"].columns)
    assert got["plans"]["start_date"].dtype == "datetime64[ns]"
    assert len(got["referrals"]) == 4


def test_no_raw_identifier_reaches_the_warehouse(loaded):
    d, wh, _ = loaded
    raw_ids = identifiers()
    assert len(raw_ids) == 20
    data = wh.read_bytes()
    for value in raw_ids:
        assert value.encode() not in data, value
    con = duckdb.connect(str(wh), read_only=True)
    try:
        cols = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE data_type = 'VARCHAR'").fetchall()
        texts = set()
        for table, column in cols:
            texts |= {r[0] for r in con.execute(f'SELECT DISTINCT "{column}" FROM "{table}"').fetchall() if r[0]}
    finally:
        con.close()
    assert texts, "the warehouse has text"
    for text in texts:
        for value in raw_ids:
            assert value not in text, (value, text)


def test_same_child_same_pseudonym_across_tables_but_not_across_councils(loaded):
    _, wh, _ = loaded
    t201 = warehouse.read_council(wh, "201")
    child = pseudonymise.pseudonymise_value("CH201A", "child_id", "201", KEY)
    assert child.startswith("c_") and len(child) == 2 + pseudonymise.HEX_CHARS
    for name in ("children", "referrals", "assessments", "plans", "interventions", "allocations"):
        assert child in set(t201[name]["child_id"]), name
    assert set(t201["referrals"]["child_id"]) <= set(t201["children"]["child_id"])
    assert set(t201["plans"]["referral_id"]) <= set(t201["referrals"]["referral_id"])
    assert t201["allocations"]["worker_id"].str.startswith("w_").all()
    assert t201["children"]["upn"].dropna().str.startswith("u_").all()
    # the same raw id in another council gets another pseudonym
    assert pseudonymise.pseudonymise_value("CH201A", "child_id", "202", KEY) != child
    assert pseudonymise.pseudonymise_value("CH201A", "child_id", "201", b"another-key-0123456789") != child


def test_failed_load_leaves_no_warehouse_and_no_temp_file(tmp_path):
    t = tables()
    for row in t["referrals"]:
        del row["primary_need"]  # belongs to no council: stops the load
    d = write_valid_directory(tmp_path / "d", t)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError) as err:
        warehouse.load_directory(d, out / "w.duckdb", key=KEY)
    assert "primary_need" in str(err.value) and "missing" in str(err.value)
    assert list(out.iterdir()) == []


def test_failed_load_leaves_an_existing_warehouse_untouched(loaded, tmp_path):
    d, wh, _ = loaded
    before = wh.read_bytes()
    (d / "children.csv").write_bytes("la_code,child_id\n201,Zoë\n".encode("cp1252"))
    with pytest.raises(InputError, match="not UTF-8"):
        warehouse.load_directory(d, wh, key=KEY)
    assert wh.read_bytes() == before
    assert sorted(p.name for p in wh.parent.iterdir()) == [wh.name]


def test_a_crash_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    d = write_valid_directory(tmp_path / "d")
    out = tmp_path / "out"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(warehouse_write, "_write_councils", boom)  # after the tables are in the new file
    with pytest.raises(RuntimeError):
        warehouse.load_directory(d, out / "w.duckdb", key=KEY)
    assert not out.exists() or list(out.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(RuntimeError):
        warehouse.load_directory(d, out / "w.duckdb", key=KEY)
    assert list(out.iterdir()) == []


def test_one_bad_council_is_reported_and_the_others_load(tmp_path):
    t = tables()
    t["referrals"][5]["closure_date"] = "1999-01-01"  # council 202
    t["children"][4]["ethnicity"] = "PURPLE"  # council 202
    wh = tmp_path / "w.duckdb"
    summary = warehouse.load_directory(write_valid_directory(tmp_path / "d", t), wh, key=KEY)
    assert summary.loaded == ["201"]
    assert list(summary.failed) == ["202"]
    assert {p.rule for p in summary.failed["202"]} == {"closure before referral", "unknown code"}
    assert warehouse.council_codes(wh) == ["201"]
    with pytest.raises(InputError, match="202 is not in the warehouse"):
        warehouse.read_council(wh, "202")
    assert "202" in summary.format_text() and "closure" in summary.format_text()
    assert warehouse.load_metadata(wh)["councils_failed"] == ["202"]


def test_no_clean_council_is_an_input_error(tmp_path):
    t = tables()
    for row in t["referrals"]:
        row["primary_need"] = "N99"
    with pytest.raises(InputError, match="no council's data is clean"):
        warehouse.load_directory(write_valid_directory(tmp_path / "d", t), tmp_path / "w.duckdb", key=KEY)
    assert not (tmp_path / "w.duckdb").exists()


def test_fingerprint_is_stable_and_changes_with_the_data(tmp_path):
    d = write_valid_directory(tmp_path / "d")
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    warehouse.load_directory(d, a, key=KEY)
    # same data in another row order: same fingerprint
    ref = pd.read_csv(d / "referrals.csv", dtype=str, keep_default_na=False)
    ref.iloc[::-1].to_csv(d / "referrals.csv", index=False)
    warehouse.load_directory(d, b, key=KEY)
    for la in ("201", "202"):
        fp = warehouse.data_fingerprint(a, la)
        assert len(fp) == 64 and fp == warehouse.data_fingerprint(b, la)
    assert warehouse.data_fingerprint(a, "201") != warehouse.data_fingerprint(a, "202")
    t = tables()
    t["referrals"][0]["primary_need"] = "N2"  # council 201 only
    c = tmp_path / "c.duckdb"
    warehouse.load_directory(write_valid_directory(tmp_path / "d2", t), c, key=KEY)
    assert warehouse.data_fingerprint(c, "201") != warehouse.data_fingerprint(a, "201")
    assert warehouse.data_fingerprint(c, "202") == warehouse.data_fingerprint(a, "202")


def test_key_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="INSIGHT_KEY_FILE to a file kept outside the repository"):
        pseudonymise.load_key()
    with pytest.raises(InputError, match="INSIGHT_KEY_FILE"):
        warehouse.load_directory(write_valid_directory(tmp_path / "d"), tmp_path / "w.duckdb")
    assert not (tmp_path / "w.duckdb").exists()
    key_file = pseudonymise.make_key_file(tmp_path / "keys" / "insight.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) == 64
    with pytest.raises(InputError, match="already exists"):
        pseudonymise.make_key_file(key_file)
    assert pseudonymise.load_key(key_file=key_file) == key_file.read_bytes().strip()
    monkeypatch.setenv("INSIGHT_KEY_FILE", str(key_file))
    assert pseudonymise.load_key() == key_file.read_bytes().strip()
    monkeypatch.setenv("INSIGHT_KEY", "an-inline-key-of-enough-length")
    assert pseudonymise.load_key() == b"an-inline-key-of-enough-length"
    monkeypatch.setenv("INSIGHT_KEY", "short")
    with pytest.raises(InputError, match="too short"):
        pseudonymise.load_key()
    monkeypatch.delenv("INSIGHT_KEY")
    monkeypatch.setenv("INSIGHT_KEY_FILE", str(tmp_path / "nowhere.key"))
    with pytest.raises(InputError, match="does not exist"):
        pseudonymise.load_key()


def test_the_same_key_gives_the_same_pseudonyms_on_every_load(tmp_path, monkeypatch):
    key_file = pseudonymise.make_key_file(tmp_path / "k")
    monkeypatch.setenv("INSIGHT_KEY_FILE", str(key_file))
    d = write_valid_directory(tmp_path / "d")
    warehouse.load_directory(d, tmp_path / "a.duckdb")
    warehouse.load_directory(d, tmp_path / "b.duckdb")
    a = warehouse.read_council(tmp_path / "a.duckdb", "202")["referrals"]
    b = warehouse.read_council(tmp_path / "b.duckdb", "202")["referrals"]
    pd.testing.assert_frame_equal(a, b)


def _read_in_process(path: str) -> int:
    return len(warehouse.read_council(path, "201")["referrals"])


def test_several_processes_read_at_once(loaded):
    _, wh, _ = loaded
    with ProcessPoolExecutor(max_workers=3) as pool:
        counts = list(pool.map(_read_in_process, [str(wh)] * 6))
    assert counts == [4] * 6


def test_reading_something_that_is_not_a_warehouse(tmp_path):
    junk = tmp_path / "x.duckdb"
    junk.write_text("not a database")
    assert not warehouse.is_warehouse(junk) and not warehouse.is_warehouse(tmp_path / "missing.duckdb")
    with pytest.raises(InputError, match="not an insight warehouse"):
        warehouse.read_council(junk, "201")
    with pytest.raises(InputError, match="data directory"):
        warehouse.council_codes(tmp_path)
    plain = tmp_path / "plain.duckdb"
    duckdb.connect(str(plain)).close()
    assert not warehouse.is_warehouse(plain)


def test_only_data_made_by_synth_are_marked_synthetic(tmp_path):
    """A council's own extract never gets the synthetic banner: only synth's marker file sets it."""
    from insightlib.simulate import synth

    real = write_valid_directory(tmp_path / "real")
    assert not warehouse.is_synthetic(real)
    warehouse.load_directory(real, tmp_path / "real.duckdb", key=KEY)
    assert not warehouse.is_synthetic(tmp_path / "real.duckdb")
    made = synth.generate(1, 40, 3, tmp_path / "synthetic")
    assert warehouse.is_synthetic(made) and (made / warehouse.SYNTHETIC_FILE).is_file()
    warehouse.load_directory(made, tmp_path / "synthetic.duckdb", key=KEY)
    assert warehouse.is_synthetic(tmp_path / "synthetic.duckdb")
    assert not warehouse.is_synthetic(tmp_path / "missing.duckdb")


def test_dates_already_dates_are_not_parsed_again_and_keep_their_values(loaded):
    """Issue 17: read_council converts a date column only when it is not datetime64 already (pandas'
    to_datetime walked every value of one that was); the values are those to_datetime gives."""
    raw = pd.Series(pd.to_datetime(["2019-03-31", None, "2000-02-29"]).astype("datetime64[us]"))
    assert contract.as_datetime(raw) is raw
    for values in (raw, raw.astype("datetime64[ns]"), ["2019-03-31", None, "2000-02-29"]):
        pd.testing.assert_series_equal(contract.as_datetime(values).astype("datetime64[ns]"),
                                       pd.to_datetime(pd.Series(values)).astype("datetime64[ns]"))
    _, wh, _ = loaded
    con = duckdb.connect(str(wh), read_only=True)
    try:
        direct = con.execute("SELECT referral_date, closure_date FROM referrals WHERE la_code = '201'").df()
    finally:
        con.close()
    got = warehouse.read_council(wh, "201")["referrals"]
    for c in ("referral_date", "closure_date"):
        assert got[c].dtype == "datetime64[ns]"
        pd.testing.assert_series_equal(got[c], pd.to_datetime(direct[c]).astype("datetime64[ns]"), check_names=False)


def test_pseudonyms_shared_across_tables_are_what_each_column_alone_gives():
    """pseudonymise_tables hashes an id met in several tables once; the pseudonyms are those of one call per column."""
    key = b"k" * 32
    tables = {
        "children": pd.DataFrame({"la_code": ["201", "201", "202"], "child_id": ["A", "B", "A"], "upn": ["U1", "", "U1"]}),
        "referrals": pd.DataFrame({"la_code": ["201", "202", "202"], "child_id": ["A", "A", "C"],
                                   "referral_id": ["A/1", "A/1", "C/1"]}),
    }
    out = pseudonymise.pseudonymise_tables(tables, key)
    for name, frame in tables.items():
        for col in contract.TABLES[name].identifiers:
            if col in frame:
                alone = pseudonymise.pseudonymise_series(frame[col], frame["la_code"], col, key)
                assert out[name][col].tolist() == alone.tolist()
    assert out["children"]["child_id"][0] == out["referrals"]["child_id"][0]  # same child, same council
    assert out["children"]["child_id"][2] != out["children"]["child_id"][0]  # another council
