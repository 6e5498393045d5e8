"""The canonical tables a council would extract (insightlib.contract), made from the simulated records,
and written as CSV or Parquet. Identifiers, dates and the tables' other columns take their own random
numbers (``numpy`` generators seeded from the seed), after the renewal process has run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from insightlib import contract, reference
from insightlib.simulate import practice as practice_truth
from insightlib.simulate.synth_model import (
    _ABUSE_P,
    _REASONS,
    DISABILITY_VALUES,
    INTERVENTION,
    PLANTED,
    _categorical,
    _p,
)


def _pad_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    s = pc.utf8_lpad(pc.cast(pa.array(numbers.astype(np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), s, "")


def _distinct_numbers(rng, n_groups: int, n: int, spread: int) -> np.ndarray:
    """n distinct numbers per group, in random order, below n * spread."""
    gaps = rng.integers(1, spread, size=(n_groups, n))
    nums = np.cumsum(gaps, axis=1)
    return rng.permuted(nums, axis=1)


_UPN_LETTERS = tuple("ABCDEFGHJKLMNPQRTUVWXYZ")  # DfE check letters (no I, O, S)


def _upns(rng, la_codes: np.ndarray) -> np.ndarray:
    """13-character UPNs: check letter, LA code, establishment, year, serial (DfE's check rule)."""
    n = len(la_codes)
    digits = np.empty((n, 12), dtype=np.int64)
    la = la_codes.astype(np.int64)
    digits[:, 0], digits[:, 1], digits[:, 2] = la // 100, la // 10 % 10, la % 10
    digits[:, 3:] = rng.integers(0, 10, size=(n, 9))
    digits[:, 3] = rng.choice([2, 3, 4], size=n)  # establishment 2xxx primary .. 4xxx secondary
    check = (digits * np.arange(2, 14)).sum(axis=1) % 23
    value = (digits * 10 ** np.arange(11, -1, -1, dtype=np.int64)).sum(axis=1)
    return pc.binary_join_element_wise(_take(_UPN_LETTERS, check), _pad_ids("", value, 12), "")


def _date_array(days: np.ndarray, valid=None) -> pa.Array:
    d = np.asarray(days, dtype=np.int64).astype(np.int32)
    mask = None if valid is None else ~np.asarray(valid)
    return pa.array(d, type=pa.int32(), mask=mask).cast(pa.date32())


def _segments(rng, start, end, counts):
    """Split [start, end] into counts pieces with jittered breakpoints; returns (row, seg_start, seg_end)."""
    row = np.repeat(np.arange(len(start)), counts)
    k = counts[row]
    i = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    span = (end - start)[row].astype(float)
    jitter = (rng.random(len(row)) - 0.5) * 0.5
    lo = np.where(i == 0, 0.0, (i + jitter) / k)
    hi_j = np.roll(jitter, -1)
    hi = np.where(i == k - 1, 1.0, (i + 1 + hi_j) / k)
    s = start[row] + np.floor(lo * span).astype(np.int64)
    e = start[row] + np.floor(hi * span).astype(np.int64)
    return row, s, np.maximum(e, s)


def _take(values, idx) -> pa.Array:
    """values[idx] as an Arrow string array (fast; no Python strings are made)."""
    arr = values if isinstance(values, pa.Array) else pa.array(list(values), type=pa.string())
    return arr.take(pa.array(np.asarray(idx, dtype=np.int64)))


def _nulls(arr: pa.Array, valid) -> pa.Array:
    return pc.if_else(pa.array(np.asarray(valid, dtype=bool)), arr, pa.scalar(None, arr.type))


def _plant(arr: pa.Array, rows, values) -> pa.Array:
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    order = np.argsort(rows)
    return pc.replace_with_mask(arr, pa.array(mask), pa.array([values[i] for i in order], type=pa.string()))


def _build_tables(ch, rec, councils, extract, seed, planted):
    """Every table, each from its own part of the records; one generator (seed, 7) drawn from in this order."""
    rng = np.random.default_rng([seed, 7])
    codes = councils["la_code"].to_numpy().astype(str)
    code_arr = pa.array(codes.tolist(), type=pa.string())
    n_la, n_per = len(codes), int(ch.local.max()) + 1 if len(ch.local) else 0
    tables, planted_ids = {}, {"child_id": [], "upn": [], "worker_id": []}
    tables["councils"] = _councils_table(councils, codes, code_arr, extract)
    child_id, tables["children"] = _children_table(rng, ch, codes, code_arr, n_per, extract, planted, planted_ids)
    r = _Referrals(ch, rec, code_arr, child_id, rng, extract)
    tables["referrals"] = r.table()
    tables["assessments"] = _assessments_table(rng, r, seed, extract)
    tables["plans"] = _plans_table(rng, r, extract)
    tables["interventions"] = _interventions_table(rng, r, extract)
    tables["allocations"] = _allocations_table(rng, r, ch, n_la, n_per, extract, planted, planted_ids)
    return tables, planted_ids


def _councils_table(councils, codes, code_arr, extract) -> pa.Table:
    sn = reference.statistical_neighbours().sort_values(["la_code", "rank"])
    sn = sn.groupby("la_code")["neighbour_la_code"].agg(";".join)
    return pa.table(
        {
            "la_code": code_arr,
            "la_name": councils["la_name"].tolist(),
            "extract_date": _date_array(np.full(len(codes), extract)),
            "region": councils["region"].tolist(),
            "statistical_neighbours": [sn.get(c, "") for c in codes],
        }
    )


def _children_table(rng, ch, codes, code_arr, n_per, extract, planted, planted_ids):
    """Every child's identifiers (all children, for the other tables) and the children table (only those
    with a referral on or before the extract date)."""
    n_la = len(codes)
    has = ch.first_referral <= extract
    spread = max(2, min(700, 9_000_000 // max(n_per, 1)))  # seven digits while they suffice
    child_id = _pad_ids("C", _distinct_numbers(rng, n_la, n_per, spread).reshape(-1), 7)
    upn = _upns(rng, codes.astype(np.int64)[ch.la_index])
    age_first = (ch.first_referral - ch.dob) / 365.25
    no_upn = ((age_first < 4) & (rng.random(len(upn)) < 0.5)) | (rng.random(len(upn)) < 0.03)
    upn = _nulls(upn, ~no_upn)
    if planted:
        rows = np.concatenate([np.flatnonzero((ch.la_index == i) & has)[:2] for i in range(n_la)])
        planted_ids["child_id"] = [PLANTED["child_id"].format(k + 1) for k in range(len(rows))]
        planted_ids["upn"] = [PLANTED["upn"].format(k + 1) for k in range(len(rows))]
        child_id = _plant(child_id, rows, planted_ids["child_id"])
        upn = _plant(upn, rows, planted_ids["upn"])
    hi = np.flatnonzero(has)
    return child_id, pa.table(
        {
            "la_code": _take(code_arr, ch.la_index[hi]),
            "child_id": child_id.take(pa.array(hi)),
            "date_of_birth": _date_array(ch.dob[hi]),
            "sex": _take(contract.SEX, ch.sex[hi]),
            "ethnicity": _take(contract.ETHNICITY, ch.ethnicity[hi]),
            "disability": _take(DISABILITY_VALUES, ch.disability[hi]),
            "upn": upn.take(pa.array(hi)),
        }
    )


class _Referrals:
    """The records in council, child, date order, with their referral ids: what the tables after the
    children table are made from (``la_col(rows)`` etc. give a column for those referrals)."""

    def __init__(self, ch, rec, code_arr, child_id, rng, extract):
        order = np.lexsort((rec["referral"], ch.local[rec["child"]], ch.la_index[rec["child"]]))
        self.rec = rec = {key: v[order] for key, v in rec.items()}
        self.c = c = rec["child"]
        self.la = la = ch.la_index[c]
        self.code_arr, self.child_id = code_arr, child_id
        self.n_ref = n_ref = len(c)
        n_la = len(code_arr)
        # referral ids: R + la_code + a per-council sequence in date order from a random start
        by_date = np.lexsort((c, rec["referral"], la))
        seq = np.empty(n_ref, dtype=np.int64)
        first_in_la = np.searchsorted(la[by_date], np.arange(n_la))
        seq[by_date] = np.arange(n_ref) - first_in_la[la[by_date]]
        seq += rng.integers(100000, 900000, size=n_la)[la]
        self.ref_id = pc.binary_join_element_wise(pa.scalar("R"), _take(code_arr, la), _pad_ids("", seq, 7), "")
        self.closed = closed = rec["close"] >= 0
        self.end = np.where(closed, rec["close"], np.minimum(rec["planned_close"], extract))  # last day seen
        self.path = rec["path"]
        self.r0 = rec["referral"]
        self.span = self.end - self.r0

    def la_col(self, rows) -> pa.Array:
        return _take(self.code_arr, self.la[rows])

    def child_col(self, rows) -> pa.Array:
        return self.child_id.take(pa.array(self.c[rows]))

    def ref_col(self, rows) -> pa.Array:
        return self.ref_id.take(pa.array(rows))

    def table(self) -> pa.Table:
        rec, closed, all_rows = self.rec, self.closed, np.arange(self.n_ref)
        return pa.table(
            {
                "la_code": self.la_col(all_rows),
                "referral_id": self.ref_id,
                "child_id": self.child_col(all_rows),
                "referral_date": _date_array(rec["referral"]),
                "referral_source": _take(contract.REFERRAL_SOURCES, rec["source"]),
                "primary_need": _take(contract.PRIMARY_NEED, rec["need"]),
                "referral_nfa": pa.array(rec["nfa"].astype(bool)),
                "closure_date": _date_array(rec["close"], valid=closed),
                "closure_reason": _nulls(_take(_REASONS, np.maximum(rec["reason"], 0)), closed),
            }
        )


def _assessments_table(rng, r: _Referrals, seed, extract) -> pa.Table:
    """Every referral that was not NFA; its factors from a known latent class structure (simulate/practice.py)."""
    a = np.flatnonzero(r.path > 0)
    a_start = r.r0[a] + np.minimum(rng.integers(0, 8, len(a)), r.span[a])
    a_auth = a_start + rng.integers(10, 46, len(a))
    a_auth = np.where(r.closed[a], np.minimum(a_auth, r.end[a]), a_auth)
    keep = a[a_start <= extract]
    a_start, a_auth = a_start[a_start <= extract], a_auth[a_start <= extract]
    # the factors take their own random numbers
    factors, _ = practice_truth.draw_factors(np.random.default_rng([seed, 23]), len(keep))
    factors = pa.array(factors, type=pa.string())
    return pa.table(
        {
            "la_code": r.la_col(keep),
            "referral_id": r.ref_col(keep),
            "child_id": r.child_col(keep),
            "start_date": _date_array(a_start),
            "authorised_date": _date_array(a_auth, valid=a_auth <= extract),
            "factors": factors,
        }
    )


def _plans_table(rng, r: _Referrals, extract) -> pa.Table:
    """A CIN plan (path 2); a CP plan, then often a step-down CIN plan (path 3)."""
    path, r0, end, closed = r.path, r.r0, r.end, r.closed
    cin = np.flatnonzero(path == 2)
    cin_start = np.minimum(r0[cin] + rng.integers(20, 46, len(cin)), end[cin])
    cp = np.flatnonzero(path == 3)
    cp_start = np.minimum(r0[cp] + rng.integers(10, 40, len(cp)), end[cp])
    cp_len = ((r.rec["planned_close"][cp] - cp_start) * rng.uniform(0.45, 0.9, len(cp))).astype(np.int64)
    cp_end = np.minimum(cp_start + cp_len, end[cp])
    cp_end_seen = cp_end < end[cp]  # ended before the closure (or before the extract if open)
    step = rng.random(len(cp)) < 0.7
    sd = cp[step]
    plan_ref = np.concatenate([cin, cp, sd])
    p_start = np.concatenate([cin_start, cp_start, cp_end[step]])
    p_end = np.concatenate([end[cin], cp_end, end[sd]])
    p_end_ok = np.concatenate([closed[cin], cp_end_seen | closed[cp], closed[sd]]) & (p_end <= extract)
    p_type = np.concatenate([np.zeros(len(cin), int), np.ones(len(cp), int), np.zeros(len(sd), int)])
    abuse = np.concatenate(
        [
            np.zeros(len(cin), int),
            _categorical(rng.random(len(cp)), _p(_ABUSE_P, list(_ABUSE_P))),
            np.zeros(len(sd), int),
        ]
    )
    keep = p_start <= extract
    rows = plan_ref[keep]
    return pa.table(
        {
            "la_code": r.la_col(rows),
            "referral_id": r.ref_col(rows),
            "child_id": r.child_col(rows),
            "plan_type": _take(contract.PLAN_TYPES, p_type[keep]),
            "start_date": _date_array(p_start[keep]),
            "end_date": _date_array(p_end[keep], valid=p_end_ok[keep]),
            "category_of_abuse": _nulls(_take(list(_ABUSE_P), abuse[keep]), p_type[keep] == 1),
        }
    )


def _interventions_table(rng, r: _Referrals, extract) -> pa.Table:
    """FGC during the referral (the modelled effect); the others have none."""
    rec, path, r0, span, end, closed = r.rec, r.path, r.r0, r.span, r.end, r.closed
    t = np.flatnonzero(rec["treated"])
    t_start = r0[t] + np.floor(rng.random(len(t)) * (span[t] + 1)).astype(np.int64)
    t_end = t_start + rng.integers(7, 43, len(t))
    t_end = np.where(closed[t], np.minimum(t_end, end[t]), t_end)
    pp_p = np.where(np.isin(rec["need"], [contract.PRIMARY_NEED.index(n) for n in ("N4", "N5", "N6")]), 0.12, 0.05)
    pp = np.flatnonzero((path > 0) & (rng.random(r.n_ref) < pp_p))
    pp_start = r0[pp] + np.floor(rng.random(len(pp)) * (span[pp] + 1)).astype(np.int64)
    pp_end = pp_start + rng.integers(56, 85, len(pp))
    eh = np.flatnonzero(closed & (rec["reason"] == _REASONS.index("RC9")) & (rng.random(r.n_ref) < 0.8))
    eh_start = rec["close"][eh] + rng.integers(1, 22, len(eh))
    eh_end = eh_start + rng.integers(60, 241, len(eh))
    i_ref = np.concatenate([t, pp, eh])
    i_start = np.concatenate([t_start, pp_start, eh_start])
    i_end = np.concatenate([t_end, pp_end, eh_end])
    i_kind = np.repeat([0, 1, 2], [len(t), len(pp), len(eh)])
    keep = i_start <= extract
    rows = i_ref[keep]
    return pa.table(
        {
            "la_code": r.la_col(rows),
            "child_id": r.child_col(rows),
            "intervention": _take((INTERVENTION, "Parenting Programme", "Early Help"), i_kind[keep]),
            "start_date": _date_array(i_start[keep]),
            "end_date": _date_array(i_end[keep], valid=(i_end <= extract)[keep]),
            "referral_id": _nulls(r.ref_col(rows), i_kind[keep] < 2),  # Early Help follows a closure
        }
    )


#: Each council's teams and how many of each.
_TEAMS = (
    ("Assessment Team", 3),
    ("Children in Need Team", 3),
    ("Safeguarding Team", 3),
    ("Disabled Children's Team", 1),
)


def _allocations_table(rng, r: _Referrals, ch, n_la, n_per, extract, planted, planted_ids) -> pa.Table:
    """Workers on every referral that was not NFA, with changes of worker (each with a known effect)."""
    team_names = [name if n == 1 else f"{name} {i + 1}" for name, n in _TEAMS for i in range(n)]
    per_team = max(3, n_per // 120)
    n_workers = len(team_names) * per_team
    worker_id = _pad_ids("W", _distinct_numbers(rng, n_la, n_workers, max(2, 9000 // n_workers)).reshape(-1), 4)
    if planted:
        rows = np.arange(n_la) * n_workers  # each council's first worker (assessment team 1)
        planted_ids["worker_id"] = [PLANTED["worker_id"].format(i + 1) for i in range(n_la)]
        worker_id = _plant(worker_id, rows, planted_ids["worker_id"])
    al = np.flatnonzero(r.path > 0)
    al_start = r.r0[al] + np.minimum(rng.integers(0, 4, len(al)), r.span[al])
    n_seg = 1 + r.rec["changes"][al]  # each change of worker has a known effect on re-referral
    row, s, e = _segments(rng, al_start, r.end[al], n_seg)
    ref_row = al[row]
    first_seg = np.r_[True, row[1:] != row[:-1]]
    last_seg = np.r_[row[1:] != row[:-1], True]
    team, worker = _workers(rng, r, ch, ref_row, first_seg, n_workers, per_team, planted)
    e_ok = ~(last_seg & ~r.closed[ref_row]) & (e <= extract)
    keep = s <= extract
    rows = ref_row[keep]
    return pa.table(
        {
            "la_code": r.la_col(rows),
            "child_id": r.child_col(rows),
            "worker_id": worker_id.take(pa.array(worker[keep])),
            "start_date": _date_array(s[keep]),
            "end_date": _date_array(e[keep], valid=e_ok[keep]),
            "team": _take(team_names, team[keep]),
        }
    )


def _workers(rng, r: _Referrals, ch, ref_row, first_seg, n_workers, per_team, planted):
    """Each allocation's team and worker: assessment first, a safeguarding team for CP plans, the disabled
    children's team for disabled children in need; a change of worker is always another worker."""
    team_n = np.array([n for _, n in _TEAMS])
    team_lo = np.concatenate([[0], np.cumsum(team_n)[:-1]])
    path, la = r.path, r.la
    disabled_team = (r.rec["need"][ref_row] == contract.PRIMARY_NEED.index("N2")) & ch.disabled[r.c[ref_row]]
    kind = np.where(first_seg & (path[ref_row] != 3), 0, np.where(path[ref_row] == 3, 2, 1))
    kind = np.where(disabled_team & ~first_seg, 3, kind)
    team = team_lo[kind] + np.floor(rng.random(len(ref_row)) * team_n[kind]).astype(np.int64)
    slot = rng.integers(0, per_team, len(ref_row))
    for _ in range(per_team):  # a change of worker is a different worker, also within one team
        same = ~first_seg & (team == np.roll(team, 1)) & (slot == np.roll(slot, 1))
        if not same.any():
            break
        slot[same] = (slot[same] + 1) % per_team
    worker = la[ref_row] * n_workers + team * per_team + slot
    if planted:  # make sure every planted worker appears
        firsts = np.flatnonzero(first_seg & (kind == 0))
        _, at = np.unique(la[ref_row[firsts]], return_index=True)
        worker[firsts[at]] = la[ref_row[firsts[at]]] * n_workers
        team[firsts[at]] = 0
    return team, worker


def _write(tables: dict, out: Path, fmt: str) -> None:
    for name, table in tables.items():
        cols = [c for c in contract.TABLES[name].columns if c in table.column_names]
        table = table.select(cols)
        if fmt == "parquet":
            pq.write_table(table, out / f"{name}.parquet")
        elif name == "councils":  # council names contain commas ("Bristol, City of")
            table.to_pandas().to_csv(out / f"{name}.csv", index=False)
        else:  # no other value holds a comma or a quote; pyarrow refuses to write one unquoted
            with open(out / f"{name}.csv", "wb") as fh:
                fh.write((",".join(table.column_names) + "\n").encode())
                pacsv.write_csv(table, fh, write_options=pacsv.WriteOptions(quoting_style="none", include_header=False))
