"""scripts/compare_results.py (results.json before/after a refactor): it sees a changed number and ignores run stamps."""
import importlib.util
import json
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("compare_results", Path(__file__).resolve().parents[1] / "scripts" / "compare_results.py")
compare_results = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compare_results)


def _write(folder: Path, payload: dict) -> None:
    (folder / "demo" / "101").mkdir(parents=True)
    (folder / "demo" / "101" / "results.json").write_text(json.dumps(payload), encoding="utf-8")


def test_same_numbers_other_run_stamps_are_equal(tmp_path):
    _write(tmp_path / "a", {"created": "2026-01-01", "versions": {"insightlib": "0.1"}, "km": {"91": [0.8, 0.7]}, "n": 5})
    _write(tmp_path / "b", {"created": "2026-02-02", "versions": {"insightlib": "0.2"}, "km": {"91": [0.8, 0.7]}, "n": 5})
    count, diffs, worst = compare_results.compare(tmp_path / "a", tmp_path / "b")
    assert (count, diffs, worst) == (1, [], 0.0)
    assert compare_results.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def test_a_changed_number_a_missing_key_and_a_missing_file_are_differences(tmp_path):
    _write(tmp_path / "a", {"km": {"91": [0.8, 0.7]}, "n": 5, "note": "x"})
    _write(tmp_path / "b", {"km": {"91": [0.8, 0.7000001]}, "n": 5})
    (tmp_path / "b" / "demo" / "102").mkdir()
    (tmp_path / "b" / "demo" / "102" / "results.json").write_text("{}", encoding="utf-8")
    count, diffs, worst = compare_results.compare(tmp_path / "a", tmp_path / "b")
    assert count == 2
    assert any("km/91[1]" in d for d in diffs) and any("note" in d for d in diffs) and any("102" in d for d in diffs)
    assert abs(worst - 1e-7) < 1e-9
    assert compare_results.compare(tmp_path / "a", tmp_path / "b", tolerance=1e-6)[1] != []  # the missing key and file remain
    assert compare_results.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
