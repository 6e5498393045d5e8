"""The renewal process: every child's chain of referrals, closures and re-referrals, and the calibration
of each council's baseline to its published re-referral rate (the model is simulate/synth_model.py).

All randomness is counter-based (a hash of seed, council, child, referral number and stream), so
calibration reruns use common random numbers and a council's children do not depend on which other
councils are generated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from insightlib import contract
from insightlib.simulate import practice as practice_truth
from insightlib.simulate.synth_model import (
    _AGE_W,
    _DISABILITY_CODES,
    _DISABILITY_P,
    _ETH_P,
    _ETH_P_LONDON,
    _NEED_P,
    _PAIR_INDEX,
    _REASON_P,
    _REASONS,
    _SOURCE_P,
    C_AGE,
    C_AGE_FRAC,
    C_DIS,
    C_DIS2,
    C_DIS_CODE,
    C_DIS_CODE2,
    C_ETH,
    C_FIRST,
    C_SEX,
    C_USUAL_N2,
    C_USUAL_NEED,
    S_DUR,
    S_GAP,
    S_NEED_DRAW,
    S_NEED_KEEP,
    S_NFA,
    S_PATH,
    S_REASON,
    S_SOURCE,
    S_TREAT,
    S_WORKER,
    Model,
    _base,
    _categorical,
    _eighteenth_birthday,
    _log_fgc_by_need,
    _log_hr_tables,
    _p,
    _quarter,
    _uniform,
    age_band,
    previous_referrals_band,
)


@dataclass
class _Children:
    la_index: np.ndarray  # council position
    local: np.ndarray  # position within council
    base: np.ndarray  # uint64 random base
    first_referral: np.ndarray  # day
    dob: np.ndarray
    b18: np.ndarray
    sex: np.ndarray  # index into SEX
    ethnicity: np.ndarray
    disability: np.ndarray  # index into DISABILITY_VALUES
    disabled: np.ndarray  # bool
    usual_need: np.ndarray  # index into PRIMARY_NEED


def _make_children(councils: pd.DataFrame, n_per: int, seed: int, start: int, extract: int) -> _Children:
    n_la = len(councils)
    la_index = np.repeat(np.arange(n_la), n_per)
    local = np.tile(np.arange(n_per), n_la)
    keys = (councils["la_code"].astype(np.int64).to_numpy()[la_index] << 32) | local
    base = _base(seed, keys)
    u = lambda s: _uniform(base, 0, s)  # noqa: E731
    first = start + np.floor(u(C_FIRST) * (extract - start + 1)).astype(np.int64)
    age_years = _categorical(u(C_AGE), _AGE_W / _AGE_W.sum())
    age_days = np.floor((age_years + u(C_AGE_FRAC)) * 365.25).astype(np.int64)
    age_days = np.minimum(age_days, 18 * 365 - 1)  # always before the 18th birthday
    dob = first - age_days
    sex = _categorical(u(C_SEX), np.array([51.5, 48.0, 0.5]))
    london = (councils["region"].to_numpy() == "London")[la_index]
    eth = np.where(
        london,
        _categorical(u(C_ETH), _p(_ETH_P_LONDON, contract.ETHNICITY)),
        _categorical(u(C_ETH), _p(_ETH_P, contract.ETHNICITY)),
    )
    disabled = u(C_DIS) < 0.11
    dp = _p(_DISABILITY_P, _DISABILITY_CODES)
    c1 = _categorical(u(C_DIS_CODE), dp)
    c2 = _categorical(u(C_DIS_CODE2), dp)
    two = disabled & (u(C_DIS2) < 0.2) & (c1 != c2)
    dis = np.where(disabled, 1 + c1, 0)
    dis = np.where(two, _PAIR_INDEX[np.minimum(c1, c2), np.maximum(c1, c2)], dis)
    need_p = _p(_NEED_P, contract.PRIMARY_NEED)
    usual = _categorical(u(C_USUAL_NEED), need_p)
    usual = np.where(disabled & (u(C_USUAL_N2) < 0.45), contract.PRIMARY_NEED.index("N2"), usual)
    return _Children(la_index, local, base, first, dob, _eighteenth_birthday(dob), sex, eth, dis, disabled, usual)


def _simulate(ch: _Children, log_lambda: np.ndarray, adopt_q: np.ndarray, extract: int, model: Model, record: bool):
    """Run every child's referral chain. Returns per-council DfE counts (and records).

    One pass per referral number over every chain still going (_chain_step draws the referral, its
    closure and the next referral); what is left here is the chains' bookkeeping."""
    n_la = len(log_lambda)
    tables = _model_tables(model)
    year_start = extract - 364  # the DfE year ending on the extract date
    n_year = np.zeros(n_la)
    n_rerefer = np.zeros(n_la)
    idx = np.flatnonzero(ch.first_referral <= extract)
    r = ch.first_referral[idx]
    prev_r = np.full(len(idx), -(10**9), dtype=np.int64)
    prev_need = ch.usual_need[idx]
    recs = []
    j = 0
    while len(idx):
        la = ch.la_index[idx]
        in_year = r >= year_start
        n_year += np.bincount(la[in_year], minlength=n_la)
        n_rerefer += np.bincount(la[in_year & (r - prev_r <= 365)], minlength=n_la)
        usual = prev_need if j else ch.usual_need[idx]
        step = _chain_step(ch, idx, j, r, usual, tables, adopt_q[la], log_lambda[la], extract, model, record)
        if record:
            recs.append(step["record"])
        event = step["event"]
        idx, prev_r, r, prev_need = idx[event], r[event], step["next"][event], step["need"][event]
        j += 1
    out = {"n_year": n_year, "n_rerefer": n_rerefer}
    if record:
        out["records"] = {key: np.concatenate([d[key] for d in recs]) for key in recs[0]}
    return out


def _model_tables(model: Model) -> dict:
    """What every step of the chains reads: the log hazard ratio tables and the category probabilities."""
    return {
        "log_hrs": _log_hr_tables(model),
        "need_p": _p(_NEED_P, contract.PRIMARY_NEED),
        "src_p": _p(_SOURCE_P, contract.REFERRAL_SOURCES),
        "reason_p": {k: _p(v, _REASONS) for k, v in _REASON_P.items()},
        "log_fgc": _log_fgc_by_need(model),
    }


def _chain_step(ch: _Children, idx, j: int, r, usual_need, tables: dict, aq, log_lambda, extract: int, model, record):
    """The j-th referral of the chains ``idx`` (on days ``r``), its closure, and the next referral where
    the chain goes on (``event``): the need, the next day and, with ``record``, the step's record."""
    base = ch.base[idx]
    b18 = ch.b18[idx]
    need, source, nfa, path, dur = _referral(base, j, usual_need, tables["need_p"], tables["src_p"])
    close = r + dur
    adult = close >= b18
    close = np.minimum(close, b18)
    open_ = close > extract
    age = (close - ch.dob[idx]) / 365.25
    reason = _closure_reason(base, j, path, age, adult, tables["reason_p"])
    # covariates of the episode that starts at closure, and its hazard
    args = (need, nfa, ch.disabled[idx], age, path, close, aq, log_lambda)
    lp, treated, prog, changes, log_a = _episode(model, tables["log_hrs"], tables["log_fgc"], base, j, *args)
    k = model.weibull_shape
    gap = np.ceil(np.exp((np.log(-np.log(_uniform(base, j, S_GAP))) - log_a) / k))
    gap = np.maximum(gap, 1).astype(np.int64)
    nxt = close + gap
    stops = open_ | (reason == _RC["RC2"]) | (reason == _RC["RC5"]) | adult
    event = ~stops & (nxt <= extract) & (nxt < b18)
    out = {"event": event, "next": nxt, "need": need}
    if record:
        out["record"] = dict(
            child=idx,
            j=np.full(len(idx), j),
            referral=r,
            need=need,
            source=source,
            nfa=nfa,
            path=path,
            close=np.where(open_, -1, close),
            planned_close=r + dur,
            reason=np.where(open_, -1, reason),
            treated=treated,
            lp=lp,
            prog=prog,
            log_a=log_a,
            next=np.where(event, nxt, -1),
            changes=changes,
        )
    return out


_N9 = contract.PRIMARY_NEED.index("N9")
_N1 = contract.PRIMARY_NEED.index("N1")
_POLICE = contract.REFERRAL_SOURCES.index("6")
_RC = {r: i for i, r in enumerate(_REASONS)}


def _episode(model: Model, log_hrs, log_fgc, base, j: int, need, nfa, disabled, age, path, close, aq, log_lambda):
    """The episode that starts at a closure: its linear predictor, whether it had a conference (by the
    confounded propensity), the programme's hazard ratio, the changes of worker, and the log of the
    Weibull scale of the time to the next referral."""
    need_lhr, age_lhr, prev_lhr = log_hrs
    band = age_band(age)
    lp = (
        need_lhr[need]
        + age_lhr[band]
        + prev_lhr[previous_referrals_band(j)]
        + math.log(model.referral_nfa_hr) * nfa
        + math.log(model.disability_hr) * disabled
    )
    logit = (
        model.propensity_intercept
        + model.propensity_gamma * (lp - math.log(model.referral_nfa_hr) * nfa)
        + model.propensity_nfa_logit * nfa
    )
    p_treat = np.clip(special.expit(logit), *model.propensity_bounds)
    treated = _uniform(base, j, S_TREAT) < p_treat
    q_since = _quarter(close) - aq
    prog = np.where((aq >= 0) & (q_since >= 0), model.programme_hr(np.maximum(q_since, 0)), 1.0)
    # changes of allocated worker during the referral: their known effect (simulate/practice.py)
    changes = practice_truth.worker_changes(_uniform(base, j, S_WORKER), path)
    log_a = log_lambda + lp + log_fgc[need] * treated + np.log(prog) + practice_truth.log_hr_offset(changes, path)
    return lp, treated, prog, changes, log_a


def _referral(base, j: int, usual_need, need_p, src_p):
    """The j-th referral of each chain: need (mostly the previous or usual one), source, NFA, path
    (0 nfa, 1 assessment only, 2 CIN plan, 3 CP plan) and duration in days."""
    keep = _uniform(base, j, S_NEED_KEEP) < (0.75 if j else 0.85)
    drawn = _categorical(_uniform(base, j, S_NEED_DRAW), need_p)
    need = np.where(keep, usual_need, drawn)
    source = _categorical(_uniform(base, j, S_SOURCE), src_p)
    p_nfa = 0.05 + 0.25 * (need == _N9) + 0.04 * (source == _POLICE)
    nfa = _uniform(base, j, S_NFA) < p_nfa
    up = _uniform(base, j, S_PATH)
    p_cp = np.where(need == _N1, 0.20, 0.06)
    p_cin = np.where(need == _N9, 0.05, 0.22)
    path = np.where(nfa, 0, np.where(up < p_cp, 3, np.where(up < p_cp + p_cin, 2, 1)))
    z = special.ndtri(_uniform(base, j, S_DUR))
    dur = np.select(
        [path == 0, path == 1, path == 2],
        [
            np.floor(np.exp(0.9 * z) - 0.6).clip(0, 30),
            np.exp(np.log(32) + 0.45 * z),
            45 + np.exp(np.log(180) + 0.6 * z),
        ],
        45 + np.exp(np.log(330) + 0.5 * z),
    ).astype(np.int64)
    return need, source, nfa, path, dur


def _closure_reason(base, j: int, path, age, adult, reason_p):
    """The closure reason by path, made consistent with the age at closure (RC1 under 10, RC6 from 16,
    RC7 at 18 unless the child died)."""
    ur = _uniform(base, j, S_REASON)
    rc = _RC
    reason = np.select(
        [path == 0, path == 1],
        [_categorical(ur, reason_p["nfa"]), _categorical(ur, reason_p["assessment"])],
        _categorical(ur, reason_p["plan"]),
    )
    reason = np.where((reason == rc["RC1"]) & (age >= 10), rc["RC7"], reason)
    reason = np.where((reason == rc["RC6"]) & (age < 16), rc["RC7"], reason)
    return np.where(adult & (reason != rc["RC2"]), rc["RC7"], reason)


def _calibrate(ch, targets, adopt_q, extract, model):
    """Newton steps, per council, on the log baseline until the DfE rate matches the target.

    The start is a rule of thumb fitted on national runs of the default model; the slope
    of logit(rate) against the log baseline is shared by all councils (about 1.25) and
    re-estimated from the councils' own steps. Common random numbers make every rerun
    differ only through the baseline.
    """
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    lt = logit(targets)
    x = -3.38 + 0.8 * lt + np.where(adopt_q >= 0, 0.15, -0.15)
    slope = 1.25
    hist_x, hist_a = [], []
    lo, hi = np.full(len(x), -np.inf), np.full(len(x), np.inf)
    small = len(ch.base) < 300_000
    for _ in range(model.calibration_iterations_small if small else model.calibration_iterations):
        res = _simulate(ch, x, adopt_q, extract, model, record=False)
        a = res["n_rerefer"] / np.maximum(res["n_year"], 1)
        hist_x.append(x.copy())
        hist_a.append(a)
        step = 0.5 / np.maximum(res["n_year"], 1)  # half of one referral's worth of rate
        if np.all(np.abs(a - targets) <= np.maximum(model.calibration_tolerance, step)):
            break
        y = logit(np.clip(a, 0.005, 0.995))
        if len(hist_x) > 1:
            dx = hist_x[-1] - hist_x[-2]
            dy = y - logit(np.clip(hist_a[-2], 0.005, 0.995))
            big = np.abs(dx) > 0.05
            if big.sum() >= 3:
                slope = float(np.clip(np.median(dy[big] / dx[big]), 0.5, 3.0))
        # bracket each council's answer; a Newton step outside the bracket is replaced by bisection
        below = a < targets
        lo = np.where(below, np.maximum(lo, x), lo)
        hi = np.where(~below, np.minimum(hi, x), hi)
        step_x = x + np.clip((lt - y) / slope, -1.5, 1.5)
        bracketed = np.isfinite(lo) & np.isfinite(hi)
        outside = bracketed & ((step_x <= lo) | (step_x >= hi))
        x = np.where(outside, (lo + hi) / 2, step_x)
    err = np.abs(np.array(hist_a) - targets)  # iterations x councils
    best = np.argmin(err, axis=0)
    return np.array(hist_x)[best, np.arange(len(targets))]
