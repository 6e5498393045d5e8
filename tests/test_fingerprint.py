"""One module computes every fingerprint (ingest/fingerprint.py), and each gives the value it gave
before it moved there: a warehouse's stored fingerprints, the programme's and the skills explorer's
data_fingerprint and the run's file hashes stay comparable with those already written."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from insightlib import contract
from insightlib.analyses import programme, skills
from insightlib.ingest import fingerprint, warehouse, warehouse_write
from insightlib.simulate import synth

KEY = "a-test-key-that-is-long-enough-0123456789"


def _old_rows_fingerprint(tables: dict, version: int) -> str:
    """warehouse._fingerprint as it was written before ingest/fingerprint.py (FORMAT_VERSION as given)."""
    h = hashlib.sha256(f"insight-fingerprint-v{version}".encode())
    for name in contract.TABLES:
        frame = tables.get(name)
        spec = contract.TABLES[name]
        h.update(f"\x1e{name}\x1f{','.join(spec.columns)}\x1f".encode())
        if frame is None or frame.empty:
            continue
        text = {}
        for c in spec.columns:
            s = frame[c]
            if c in spec.dates:
                text[c] = s.dt.strftime("%Y-%m-%d").fillna("")
            else:
                text[c] = s.astype(object).where(s.notna(), "").astype(str)
        rows = pd.util.hash_pandas_object(pd.DataFrame(text), index=False).to_numpy()
        h.update(np.sort(rows).tobytes())
        h.update(str(len(rows)).encode())
    return h.hexdigest()


def test_the_warehouse_fingerprint_stored_at_load_is_unchanged_and_ignores_row_order(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    data = synth.generate(2, 40, 3, tmp_path / "data")
    wh = tmp_path / "w.duckdb"
    warehouse.load_directory(data, wh)
    for i, la in enumerate(warehouse.council_codes(wh)):
        tables = warehouse.read_council(wh, la)  # dates, missing values and booleans as a load has them
        again = tmp_path / f"again{i}.duckdb"
        stored = warehouse.write_warehouse(tables, again)[la]
        old = _old_rows_fingerprint(tables, warehouse_write.FORMAT_VERSION)
        # the national load computes every council's at once (fingerprint.rows_fingerprints): the same value
        assert stored == old == warehouse.data_fingerprint(again, la) == warehouse.data_fingerprint(wh, la)
        assert warehouse_write.council_fingerprint(tables) == stored
        shuffled = {n: f.sample(frac=1.0, random_state=1) for n, f in tables.items()}
        assert warehouse_write.council_fingerprint(shuffled) == stored  # row order is not data
        changed = dict(tables, referrals=tables["referrals"].iloc[1:])
        assert warehouse_write.council_fingerprint(changed) != stored


def test_the_programme_national_and_folder_fingerprints_are_computed_as_before(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    data = synth.generate(2, 30, 4, tmp_path / "data")
    wh = tmp_path / "w.duckdb"
    warehouse.load_directory(data, wh)
    codes = warehouse.council_codes(wh)
    joined = "".join(warehouse.data_fingerprint(wh, la) for la in codes)
    assert programme.data_fingerprint(wh) == hashlib.sha256(joined.encode()).hexdigest()[:16]
    assert programme.data_fingerprint(wh, codes[:1]) == fingerprint.combined([warehouse.data_fingerprint(wh, codes[0])])
    old_folder = hashlib.sha256()
    for f in sorted(p for p in data.iterdir() if p.is_file()):
        old_folder.update(f.name.encode())
        old_folder.update(f.read_bytes())
    assert programme.data_fingerprint(data) == old_folder.hexdigest()[:16] == fingerprint.folder_sha256(data)
    stamp = fingerprint.folder_stamp(data)
    (data / "referrals.csv").write_text((data / "referrals.csv").read_text() + "\n")
    assert fingerprint.folder_stamp(data) != stamp  # a changed file is a changed folder


def test_the_skills_fingerprint_and_file_hashes_are_computed_as_before(tmp_path):
    digest = hashlib.sha256()
    for name, table in sorted(skills.src.load_tables(skills.src.REFERENCE).items()):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    assert skills.data_fingerprint() == digest.hexdigest()[:16]
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (3 << 20) + b"tail")  # more than one block
    assert fingerprint.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
