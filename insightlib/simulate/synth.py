"""Synthetic council extracts with a known truth, for testing every analysis end to end.

Real data cannot be shipped, and an estimator can only be checked against an answer that
is known. This module writes a data directory in the canonical format
(insightlib.contract) for real councils, generated from an explicit model whose effects
are written to ``truth.json``: the hazard ratios a Cox model should recover, the causal
effect of a confounded intervention (Family Group Conference), and the effect of a
programme (Family Safeguarding) adopted by some councils at staggered dates.

The model (docs/synthetic-data.md has every detail):

* every child starts with a first referral between the start of the window and the
  extract date; each referral closes after a duration that depends on its path (NFA,
  assessment only, child-in-need plan, child-protection plan);
* after each closure, the time to the next referral has a Weibull proportional-hazards
  law, cumulative hazard ``lambda_c * exp(x'beta) * HR_FGC^treated * HR_prog(q) * t^shape``
  (t in days, shape < 1 so risk is highest soon after closure);
* observation stops at the extract date, the 18th birthday, death (RC2) and transfer
  out (RC5).

Each council's baseline ``lambda_c`` is calibrated so that its DfE measure (share of
referrals in the final year with a previous referral in the 365 days before) matches its
published rate. All randomness of the renewal process is counter-based (a hash of seed,
council, child, referral number and stream), so calibration reruns use common random
numbers and a council's children do not depend on which other councils are generated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy import special

from insightlib import contract, reference
from insightlib.errors import InputError
from insightlib.simulate import practice as practice_truth

# --- the model ------------------------------------------------------------------------

#: The truth model's age bands are the reports' (contract.AGE_BANDS), so its hazard ratios are the ones
#: the re-referral and intervention reports estimate. Age at closure in years = days / 365.25.
AGE_BANDS = tuple(label for _lo, _hi, label in contract.AGE_BANDS)
AGE_BAND_EDGES = tuple(float(lo) for lo, _hi, _label in contract.AGE_BANDS[1:])
PREVIOUS_REFERRAL_BANDS = ("0", "1", "2", "3+")

INTERVENTION = "Family Group Conference"
PROGRAMME = "Family Safeguarding"
OTHER_INTERVENTIONS = ("Early Help", "Parenting Programme")

PLANTED = {
    "child_id": "PLANTEDCHILD{:04d}",
    "upn": "PLANTEDUPN{:05d}",
    "worker_id": "PLANTEDWORKER{:02d}",
}


@dataclass(frozen=True)
class Model:
    """Every parameter of the generative model; ``truth.json`` records the ones that matter."""

    weibull_shape: float = 0.55
    primary_need_hr: dict = field(default_factory=lambda: {
        "N0": 1.0, "N1": 1.4, "N2": 0.7, "N3": 1.1, "N4": 1.0, "N5": 1.25, "N6": 1.15,
        "N7": 0.9, "N8": 1.3, "N9": 0.6,
    })
    primary_need_reference: str = "N4"
    age_band_hr: dict = field(default_factory=lambda: dict(zip(AGE_BANDS, (1.0, 0.9, 1.1, 0.75))))
    referral_nfa_hr: float = 1.5
    previous_referrals_hr: dict = field(default_factory=lambda: {"0": 1.0, "1": 1.25, "2": 1.5, "3+": 1.8})
    disability_hr: float = 0.8
    intervention_hr: float = 0.7
    # effect modification: the conference's hazard ratio by primary need (needs not named: intervention_hr);
    # truth.json then gives every subgroup's true effect (intervention.subgroups)
    intervention_hr_by_need: dict = field(default_factory=dict)
    horizon_days: int = 365
    # propensity of the Family Group Conference: logit p = a + gamma * x'beta_(no nfa) + nfa_logit * nfa
    propensity_intercept: float = -2.4
    propensity_gamma: float = 3.5
    propensity_nfa_logit: float = -1.5
    propensity_bounds: tuple = (0.02, 0.8)
    # programme: HR = start - (start - end) * min(q, ramp) / ramp, q quarters since adoption
    programme_hr_start: float = 0.9
    programme_hr_end: float = 0.7
    programme_ramp_quarters: int = 8
    adoption_share: float = 0.5
    window_years: int = 9
    # calibration of each council's baseline
    target_bounds: tuple = (0.10, 0.40)
    calibration_tolerance: float = 0.003
    calibration_iterations: int = 5  # national-scale runs (each costs a few seconds)
    calibration_iterations_small: int = 12  # under 300,000 children (each costs well under a second)

    def programme_hr(self, quarters_since):
        q = np.minimum(np.asarray(quarters_since, dtype=float), self.programme_ramp_quarters)
        drop = self.programme_hr_start - self.programme_hr_end
        return self.programme_hr_start - drop * q / self.programme_ramp_quarters


MODEL = Model()

# --- code lists with realistic frequencies -------------------------------------------

_NEED_P = {"N0": .03, "N1": .50, "N2": .07, "N3": .04, "N4": .12, "N5": .11, "N6": .05,
           "N7": .01, "N8": .03, "N9": .04}
_SOURCE_P = {"1A": 3, "1B": .5, "1C": 1, "1D": 2.5, "2A": 20, "2B": 1.5, "3A": 1.5, "3B": 2,
             "3C": .5, "3D": 1, "3E": 3, "3F": 6, "4": 2, "5A": 4, "5B": 2, "5C": 2, "5D": 4,
             "6": 29, "7": 3, "8": 5, "9": 2, "10": 3}
_ETH_P = {"WBRI": 62, "WIRI": .3, "WIRT": .2, "WOTH": 5, "WROM": 1, "MWBC": 3, "MWBA": 1, "MWAS": 1,
          "MOTH": 2.5, "AIND": 1, "APKN": 3, "ABAN": 1, "AOTH": 1.5, "BCRB": 1, "BAFR": 3.5,
          "BOTH": 1, "CHNE": .2, "OOTH": 2.5, "REFU": 2, "NOBT": 6}
_ETH_P_LONDON = {"WBRI": 24, "WIRI": .5, "WIRT": .3, "WOTH": 11, "WROM": 1.5, "MWBC": 5, "MWBA": 2,
                 "MWAS": 2, "MOTH": 6, "AIND": 3, "APKN": 3, "ABAN": 5, "AOTH": 4, "BCRB": 5,
                 "BAFR": 11, "BOTH": 5, "CHNE": .5, "OOTH": 6, "REFU": 2, "NOBT": 3.2}
_DISABILITY_P = {"AUT": 30, "LD": 20, "BEH": 15, "COMM": 10, "CON": 5, "MOB": 5, "HAND": 3, "PC": 3,
                 "INC": 2, "HEAR": 3, "VIS": 2, "DDA": 2}
_DISABILITY_CODES = tuple(_DISABILITY_P)
_PAIRS = [(i, j) for i in range(len(_DISABILITY_CODES)) for j in range(i + 1, len(_DISABILITY_CODES))]
#: every disability value a synthetic child can have: NONE, one code, or two codes
DISABILITY_VALUES = (("NONE",) + _DISABILITY_CODES
                     + tuple(f"{_DISABILITY_CODES[i]};{_DISABILITY_CODES[j]}" for i, j in _PAIRS))
_PAIR_INDEX = np.zeros((len(_DISABILITY_CODES),) * 2, dtype=np.int64)
for _k, (_i, _j) in enumerate(_PAIRS):
    _PAIR_INDEX[_i, _j] = 1 + len(_DISABILITY_CODES) + _k
_AGE_W = np.array([10, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 6, 5, 3], dtype=float)
# closure reasons by path: nfa, assessment only, plan
_REASONS = contract.CLOSURE_REASONS  # RC1..RC9
_REASON_P = {
    "nfa": {"RC8": 84.5, "RC7": 13, "RC5": 2.4, "RC2": 0.1},
    "assessment": {"RC8": 58, "RC9": 27, "RC7": 11.5, "RC5": 3.3, "RC2": 0.1, "RC3": 0.1},
    "plan": {"RC7": 52, "RC9": 22, "RC8": 8, "RC1": 2, "RC3": 4, "RC4": 4, "RC5": 6.3, "RC6": 1.4, "RC2": 0.3},
}
_ABUSE_P = {"NEG": 50, "EMO": 36, "PHY": 6, "SAB": 4, "MUL": 4}


def _p(d: dict, keys) -> np.ndarray:
    w = np.array([d.get(k, 0.0) for k in keys], dtype=float)
    return w / w.sum()


# --- counter-based random numbers ----------------------------------------------------

_U64 = 2**64
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64 that scrambles every bit."""
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def _base(seed: int, keys: np.ndarray) -> np.ndarray:
    s = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % _U64)
    with np.errstate(over="ignore"):
        return _mix(keys.astype(np.uint64) ^ _mix(np.array([s], dtype=np.uint64)))


def _uniform(base: np.ndarray, j: int, stream: int) -> np.ndarray:
    """U(0,1) for (child, referral number j, stream): the same number on every run."""
    c = np.uint64(((j * 97 + stream + 1) * 0x9E3779B97F4A7C15) % _U64)
    with np.errstate(over="ignore"):
        z = _mix(base + c)
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _categorical(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    cum = np.cumsum(p)
    return np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(p) - 1)


# streams (one per random quantity of a referral, and of a child; S_NEED and C_COUNCIL_CHILD are unused,
# kept so that the other streams, and so every generated file, stay as they are)
(S_NEED_KEEP, S_NEED, S_SOURCE, S_NFA, S_PATH, S_DUR, S_REASON, S_TREAT, S_GAP, S_NEED_DRAW, S_WORKER) = range(11)
(C_COUNCIL_CHILD, C_FIRST, C_AGE, C_AGE_FRAC, C_SEX, C_ETH, C_DIS, C_DIS2, C_DIS_CODE, C_DIS_CODE2,
 C_USUAL_NEED, C_USUAL_N2) = range(20, 32)

# --- dates ---------------------------------------------------------------------------


def _day(value) -> int:
    return int(np.datetime64(pd.Timestamp(value).date(), "D").astype(np.int64))


def _eighteenth_birthday(dob: np.ndarray) -> np.ndarray:
    d = dob.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    offset = (d - month.astype("datetime64[D]")).astype(np.int64)
    b = (month + 12 * contract.ADULT_AGE_YEARS).astype("datetime64[D]").astype(np.int64) + offset
    return b  # 29 February births: 1 March in a non-leap year


def _quarter(days: np.ndarray) -> np.ndarray:
    return np.asarray(days).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) // 3


def _quarter_start(q) -> np.ndarray:
    return (np.asarray(q, dtype=np.int64) * 3).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def _quarter_label(q: int) -> str:
    return f"{1970 + q // 4}Q{q % 4 + 1}"


# --- councils ------------------------------------------------------------------------


def choose_councils(n_councils: int, seed: int, la_codes=None) -> pd.DataFrame:
    """Real councils, chosen by the seed (or given), in la_code order."""
    la = reference.local_authorities()
    if la_codes is not None:
        la_codes = [str(c) for c in la_codes]
        unknown = sorted(set(la_codes) - set(la["la_code"]))
        if unknown:
            raise InputError(f"synthetic data: unknown council code(s) {', '.join(unknown)}; "
                             "use 3-digit codes from the DfE list (insightlib.reference.local_authorities()).")
        chosen = la[la["la_code"].isin(la_codes)]
    else:
        if not 1 <= n_councils <= len(la):
            raise InputError(f"synthetic data: n_councils must be between 1 and {len(la)}, not {n_councils}.")
        rng = np.random.default_rng([seed, 153])
        chosen = la.iloc[np.sort(rng.choice(len(la), size=n_councils, replace=False))]
    return chosen.sort_values("la_code").reset_index(drop=True)


# --- the renewal process -------------------------------------------------------------


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
    eth = np.where(london, _categorical(u(C_ETH), _p(_ETH_P_LONDON, contract.ETHNICITY)),
                   _categorical(u(C_ETH), _p(_ETH_P, contract.ETHNICITY)))
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
    return _Children(la_index, local, base, first, dob, _eighteenth_birthday(dob), sex, eth, dis,
                     disabled, usual)


def _log_hr_tables(model: Model):
    need = np.log([model.primary_need_hr[k] / model.primary_need_hr[model.primary_need_reference]
                   for k in contract.PRIMARY_NEED])
    age = np.log([model.age_band_hr[b] / model.age_band_hr[AGE_BANDS[0]] for b in AGE_BANDS])
    prev = np.log([model.previous_referrals_hr[b] / model.previous_referrals_hr["0"]
                   for b in PREVIOUS_REFERRAL_BANDS])
    return need, age, prev


def age_band(age_years) -> np.ndarray:
    """Index into AGE_BANDS of an age at closure in years (days / 365.25)."""
    return np.searchsorted(np.array(AGE_BAND_EDGES), np.asarray(age_years, dtype=float), side="right")


def previous_referrals_band(n) -> np.ndarray:
    return np.minimum(np.asarray(n), len(PREVIOUS_REFERRAL_BANDS) - 1)


def _simulate(ch: _Children, log_lambda: np.ndarray, adopt_q: np.ndarray, extract: int,
              model: Model, record: bool):
    """Run every child's referral chain. Returns per-council DfE counts (and records)."""
    n_la = len(log_lambda)
    need_lhr, age_lhr, prev_lhr = _log_hr_tables(model)
    need_p = _p(_NEED_P, contract.PRIMARY_NEED)
    src_p = _p(_SOURCE_P, contract.REFERRAL_SOURCES)
    reason_p = {k: _p(v, _REASONS) for k, v in _REASON_P.items()}
    n9 = contract.PRIMARY_NEED.index("N9")
    n1 = contract.PRIMARY_NEED.index("N1")
    police = contract.REFERRAL_SOURCES.index("6")
    rc = {r: i for i, r in enumerate(_REASONS)}
    year_start = extract - 364  # the DfE year ending on the extract date
    k = model.weibull_shape
    log_fgc = _log_fgc_by_need(model)

    n_year = np.zeros(n_la)
    n_rerefer = np.zeros(n_la)
    idx = np.flatnonzero(ch.first_referral <= extract)
    r = ch.first_referral[idx]
    prev_r = np.full(len(idx), -10**9, dtype=np.int64)
    prev_need = ch.usual_need[idx]
    recs = []
    j = 0
    while len(idx):
        base = ch.base[idx]
        la = ch.la_index[idx]
        b18 = ch.b18[idx]
        in_year = r >= year_start
        n_year += np.bincount(la[in_year], minlength=n_la)
        n_rerefer += np.bincount(la[in_year & (r - prev_r <= 365)], minlength=n_la)
        # the referral
        keep = _uniform(base, j, S_NEED_KEEP) < (0.75 if j else 0.85)
        drawn = _categorical(_uniform(base, j, S_NEED_DRAW), need_p)
        need = np.where(keep, prev_need if j else ch.usual_need[idx], drawn)
        source = _categorical(_uniform(base, j, S_SOURCE), src_p)
        p_nfa = 0.05 + 0.25 * (need == n9) + 0.04 * (source == police)
        nfa = _uniform(base, j, S_NFA) < p_nfa
        # path: 0 nfa, 1 assessment only, 2 CIN plan, 3 CP plan
        up = _uniform(base, j, S_PATH)
        p_cp = np.where(need == n1, 0.20, 0.06)
        p_cin = np.where(need == n9, 0.05, 0.22)
        path = np.where(nfa, 0, np.where(up < p_cp, 3, np.where(up < p_cp + p_cin, 2, 1)))
        z = special.ndtri(_uniform(base, j, S_DUR))
        dur = np.select(
            [path == 0, path == 1, path == 2],
            [np.floor(np.exp(0.9 * z) - 0.6).clip(0, 30),
             np.exp(np.log(32) + 0.45 * z),
             45 + np.exp(np.log(180) + 0.6 * z)],
            45 + np.exp(np.log(330) + 0.5 * z),
        ).astype(np.int64)
        close = r + dur
        adult = close >= b18
        close = np.minimum(close, b18)
        open_ = close > extract
        ur = _uniform(base, j, S_REASON)
        reason = np.select([path == 0, path == 1],
                           [_categorical(ur, reason_p["nfa"]), _categorical(ur, reason_p["assessment"])],
                           _categorical(ur, reason_p["plan"]))
        age = (close - ch.dob[idx]) / 365.25
        reason = np.where((reason == rc["RC1"]) & (age >= 10), rc["RC7"], reason)
        reason = np.where((reason == rc["RC6"]) & (age < 16), rc["RC7"], reason)
        reason = np.where(adult & (reason != rc["RC2"]), rc["RC7"], reason)
        # covariates of the episode that starts at closure
        band = age_band(age)
        lp = need_lhr[need] + age_lhr[band] + prev_lhr[previous_referrals_band(j)] \
            + math.log(model.referral_nfa_hr) * nfa + math.log(model.disability_hr) * ch.disabled[idx]
        logit = (model.propensity_intercept
                 + model.propensity_gamma * (lp - math.log(model.referral_nfa_hr) * nfa)
                 + model.propensity_nfa_logit * nfa)
        p_treat = np.clip(special.expit(logit), *model.propensity_bounds)
        treated = _uniform(base, j, S_TREAT) < p_treat
        aq = adopt_q[la]
        q_since = _quarter(close) - aq
        prog = np.where((aq >= 0) & (q_since >= 0), model.programme_hr(np.maximum(q_since, 0)), 1.0)
        # changes of allocated worker during the referral: their known effect (simulate/practice.py)
        changes = practice_truth.worker_changes(_uniform(base, j, S_WORKER), path)
        log_a = log_lambda[la] + lp + log_fgc[need] * treated + np.log(prog) + practice_truth.log_hr_offset(changes, path)
        gap = np.ceil(np.exp((np.log(-np.log(_uniform(base, j, S_GAP))) - log_a) / k))
        gap = np.maximum(gap, 1).astype(np.int64)
        nxt = close + gap
        stops = open_ | (reason == rc["RC2"]) | (reason == rc["RC5"]) | adult
        event = ~stops & (nxt <= extract) & (nxt < b18)
        if record:
            recs.append(dict(child=idx, j=np.full(len(idx), j), referral=r, need=need, source=source,
                             nfa=nfa, path=path, close=np.where(open_, -1, close), planned_close=r + dur,
                             reason=np.where(open_, -1, reason), treated=treated, lp=lp, prog=prog,
                             log_a=log_a, next=np.where(event, nxt, -1), changes=changes))
        idx, prev_r, r, prev_need = idx[event], r[event], nxt[event], need[event]
        j += 1
    out = {"n_year": n_year, "n_rerefer": n_rerefer}
    if record:
        out["records"] = {key: np.concatenate([d[key] for d in recs]) for key in recs[0]}
    return out


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


# --- truth ---------------------------------------------------------------------------


def weibull_risk(log_a, horizon_days, shape: float = MODEL.weibull_shape) -> np.ndarray:
    """F(h) = 1 - exp(-a h^shape): probability of a re-referral within h days."""
    h = np.maximum(np.asarray(horizon_days, dtype=float), 0.0)
    return -np.expm1(-np.exp(log_a) * h**shape)


def weibull_rmst(log_a, horizon_days, shape: float = MODEL.weibull_shape) -> np.ndarray:
    """Restricted mean time without re-referral to the horizon (days): the integral of S."""
    a = np.exp(np.asarray(log_a, dtype=float))
    s = 1.0 / shape
    x = a * float(horizon_days) ** shape
    return special.gamma(s) * special.gammainc(s, x) / (shape * a**s)


def _log_fgc_by_need(model) -> np.ndarray:
    """Log hazard ratio of the conference for each primary need (index into contract.PRIMARY_NEED)."""
    return np.array([math.log(model.intervention_hr_by_need.get(k, model.intervention_hr)) for k in contract.PRIMARY_NEED])


def _subgroup_truth(rd, need, age, prev, disabled) -> dict:
    """True average risk difference in each subgroup, labelled as the intervention analysis labels them
    (primary_need codes; age_group bands; previous_referrals_group 0, 1, 2, 3+; disabled 1 or 0)."""
    out = {}
    labels = {
        "primary_need": np.array(contract.PRIMARY_NEED)[need],
        "age_group": np.asarray(contract.age_band(age)).astype(str),
        "previous_referrals_group": np.where(prev >= 3, "3+", prev.astype(str)),
        "disabled": disabled.astype(int).astype(str),
    }
    for var, lab in labels.items():
        out[var] = {str(v): {"ate_risk_difference": float(rd[lab == v].mean()), "episodes": int((lab == v).sum())}
                    for v in np.unique(lab)}
    return out


def _intervention_truth(rec, ch, model):
    closed = rec["close"] >= 0
    at_risk = closed & ~np.isin(rec["reason"], [_REASONS.index("RC2"), _REASONS.index("RC5")]) \
        & (rec["close"] < ch.b18[rec["child"]])
    t = rec["treated"][at_risk]
    log_fgc = _log_fgc_by_need(model)[rec["need"][at_risk]]
    log_a0 = rec["log_a"][at_risk] - log_fgc * t
    log_a1 = log_a0 + log_fgc
    h, k = model.horizon_days, model.weibull_shape
    f0, f1 = weibull_risk(log_a0, h, k), weibull_risk(log_a1, h, k)
    m0, m1 = weibull_rmst(log_a0, h, k), weibull_rmst(log_a1, h, k)
    rd, rmst = f1 - f0, m1 - m0
    child = rec["child"][at_risk]
    age = (rec["close"][at_risk] - ch.dob[child]) / 365.25
    subgroups = _subgroup_truth(rd, rec["need"][at_risk], age, rec["j"][at_risk], ch.disabled[child])
    return {
        "hazard_ratio_by_need": {k: float(math.exp(v)) for k, v in zip(contract.PRIMARY_NEED, _log_fgc_by_need(model))},
        "subgroups": subgroups,
        "name": INTERVENTION,
        "true_hazard_ratio": model.intervention_hr,
        "horizon_days": h,
        "ate_risk_difference": float(rd.mean()),
        "att_risk_difference": float(rd[t].mean()),
        "ate_rmst_difference": float(rmst.mean()),
        "att_rmst_difference": float(rmst[t].mean()),
        "risk_untreated_all": float(f0.mean()),
        "risk_treated_all": float(f1.mean()),
        "naive_risk_difference": float(f1[t].mean() - f0[~t].mean()),
        "treated_share": float(t.mean()),
        "episodes": int(at_risk.sum()),
        "treated_episodes": int(t.sum()),
        "confounders": ["primary_need", "age_at_closure", "previous_referrals", "referral_nfa", "disability"],
        "propensity": {
            "formula": "logit p = intercept + gamma * (x'beta - log(referral_nfa_hr) * referral_nfa) "
                       "+ nfa_logit * referral_nfa, clipped to bounds",
            "intercept": model.propensity_intercept, "gamma": model.propensity_gamma,
            "nfa_logit": model.propensity_nfa_logit, "bounds": list(model.propensity_bounds),
        },
        "episodes_averaged": "closed referrals at risk of re-referral: not closed RC2 or RC5, closed before "
                             "the 18th birthday; the extract date and competing events are ignored",
        "risk_difference_unit": "fraction (risk treated minus risk untreated)",
        "rmst_unit": "days",
    }


def _twfe_estimand(cell: pd.DataFrame, n_la: int, q_first: int, q_last: int):
    """TWFE's coefficient on the true effects in a balanced council-by-quarter panel.

    TWFE is linear in the outcome, so with parallel trends it converges to its
    coefficient on the effects alone: sum(D~ tau) / sum(D~^2), D~ the two-way demeaned
    treatment dummy. With effects that grow after adoption this differs from the ATT.
    """
    n_q = q_last - q_first + 1
    if n_q < 2 or n_la < 2 or not len(cell):
        return None
    d = np.zeros((n_la, n_q))
    tau = np.zeros((n_la, n_q))
    inside = (cell["q"] >= q_first) & (cell["q"] <= q_last)
    rows, cols = cell["la"][inside].to_numpy(), (cell["q"][inside] - q_first).to_numpy()
    d[rows, cols] = 1.0
    tau[rows, cols] = cell["att"][inside].to_numpy()
    dt = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    denom = float((dt**2).sum())
    return float((dt * tau).sum() / denom) if denom > 0 else None


def _programme_truth(rec, ch, councils, adopt_q, model, extract, start):
    h, k = model.horizon_days, model.weibull_shape
    closed = rec["close"] >= 0
    child = rec["child"][closed]
    close = rec["close"][closed]
    la = ch.la_index[child]
    reason = rec["reason"][closed]
    q = _quarter(close)
    follow = np.minimum(h, ch.b18[child] - close).astype(float)
    can = ~np.isin(reason, [_REASONS.index("RC2"), _REASONS.index("RC5")]) & (follow > 0)
    prog = rec["prog"][closed]
    log_a0 = rec["log_a"][closed] - np.log(prog)
    r1 = np.where(can, weibull_risk(log_a0 + np.log(prog), follow, k), 0.0)
    r0 = np.where(can, weibull_risk(log_a0, follow, k), 0.0)
    aq = adopt_q[la]
    full = _quarter_start(q + 1) - 1 + h <= extract
    treated = (aq >= 0) & (q >= aq) & full
    df = pd.DataFrame({"la": la[treated], "q": q[treated], "e": (q - aq)[treated],
                       "d": (r1 - r0)[treated] * 100.0})
    cell = df.groupby(["la", "q", "e"], as_index=False).agg(att=("d", "mean"), n=("d", "size"))
    by_e = cell.groupby("e")["att"].mean()
    codes = councils["la_code"].to_numpy()
    adoption = {codes[i]: (str(np.datetime64(int(_quarter_start(adopt_q[i])), "D")) if adopt_q[i] >= 0 else None)
                for i in range(len(codes))}
    hr_q = {str(i): float(model.programme_hr(i)) for i in range(model.programme_ramp_quarters + 1)}
    twfe = _twfe_estimand(cell, len(codes), int(_quarter(np.array([start]))[0]),
                          int(_quarter(np.array([extract - h + 1]))[0]) - 1)
    return {
        "name": PROGRAMME,
        "adoption": adoption,
        "hazard_ratio_by_quarters_since_adoption": hr_q,
        "hazard_ratio_note": f"quarters since adoption >= {model.programme_ramp_quarters} keep the last value; "
                             "before adoption and in never-adopting councils the ratio is 1",
        "att_by_event_time": {str(int(e)): float(v) for e, v in by_e.items()},
        "att": float(cell["att"].mean()) if len(cell) else None,
        "att_closure_weighted": float(np.average(cell["att"], weights=cell["n"])) if len(cell) else None,
        "att_by_council_quarter": {
            codes[i]: {_quarter_label(int(qq)): float(v) for qq, v in zip(g["q"], g["att"])}
            for i, g in cell.groupby("la")
        },
        "treated_council_quarters": int(len(cell)),
        "twfe_estimand": twfe,
        "twfe_bias": None if twfe is None or not len(cell) else twfe - float(cell["att"].mean()),
        "twfe_note": "what a two-way fixed-effects regression of the council-quarter outcome on a post-adoption "
                     "dummy converges to, given parallel trends: its coefficient on the true effects, over every "
                     "council and every full-follow-up quarter from the window start (a balanced panel)",
        "outcome": "share of closures in the quarter re-referred within 365 days",
        "unit": "percentage points",
        "horizon_days": h,
        "follow_up": "council-quarters whose last day plus 365 days is on or before the extract date",
    }


# --- tables --------------------------------------------------------------------------


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
    rng = np.random.default_rng([seed, 7])
    codes = councils["la_code"].to_numpy().astype(str)
    code_arr = pa.array(codes.tolist(), type=pa.string())
    n_la, n_per = len(codes), int(ch.local.max()) + 1 if len(ch.local) else 0
    tables, planted_ids = {}, {"child_id": [], "upn": [], "worker_id": []}

    # councils
    sn = reference.statistical_neighbours().sort_values(["la_code", "rank"])
    sn = sn.groupby("la_code")["neighbour_la_code"].agg(";".join)
    tables["councils"] = pa.table({
        "la_code": code_arr, "la_name": councils["la_name"].tolist(),
        "extract_date": _date_array(np.full(n_la, extract)),
        "region": councils["region"].tolist(),
        "statistical_neighbours": [sn.get(c, "") for c in codes],
    })

    # children (only those with a referral on or before the extract date)
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
    tables["children"] = pa.table({
        "la_code": _take(code_arr, ch.la_index[hi]), "child_id": child_id.take(pa.array(hi)),
        "date_of_birth": _date_array(ch.dob[hi]),
        "sex": _take(contract.SEX, ch.sex[hi]),
        "ethnicity": _take(contract.ETHNICITY, ch.ethnicity[hi]),
        "disability": _take(DISABILITY_VALUES, ch.disability[hi]),
        "upn": upn.take(pa.array(hi)),
    })

    # referrals, in council, child, date order
    order = np.lexsort((rec["referral"], ch.local[rec["child"]], ch.la_index[rec["child"]]))
    rec = {key: v[order] for key, v in rec.items()}
    c = rec["child"]
    la = ch.la_index[c]
    n_ref = len(c)
    la_col = lambda rows: _take(code_arr, la[rows])  # noqa: E731
    child_col = lambda rows: child_id.take(pa.array(c[rows]))  # noqa: E731
    # referral ids: R + la_code + a per-council sequence in date order from a random start
    by_date = np.lexsort((c, rec["referral"], la))
    seq = np.empty(n_ref, dtype=np.int64)
    first_in_la = np.searchsorted(la[by_date], np.arange(n_la))
    seq[by_date] = np.arange(n_ref) - first_in_la[la[by_date]]
    seq += rng.integers(100000, 900000, size=n_la)[la]
    ref_id = pc.binary_join_element_wise(pa.scalar("R"), _take(code_arr, la), _pad_ids("", seq, 7), "")
    ref_col = lambda rows: ref_id.take(pa.array(rows))  # noqa: E731
    closed = rec["close"] >= 0
    all_rows = np.arange(n_ref)
    tables["referrals"] = pa.table({
        "la_code": la_col(all_rows), "referral_id": ref_id, "child_id": child_col(all_rows),
        "referral_date": _date_array(rec["referral"]),
        "referral_source": _take(contract.REFERRAL_SOURCES, rec["source"]),
        "primary_need": _take(contract.PRIMARY_NEED, rec["need"]),
        "referral_nfa": pa.array(rec["nfa"].astype(bool)),
        "closure_date": _date_array(rec["close"], valid=closed),
        "closure_reason": _nulls(_take(_REASONS, np.maximum(rec["reason"], 0)), closed),
    })

    end = np.where(closed, rec["close"], np.minimum(rec["planned_close"], extract))  # last day seen
    path = rec["path"]
    r0 = rec["referral"]
    span = end - r0

    # assessments: every referral that was not NFA
    a = np.flatnonzero(path > 0)
    a_start = r0[a] + np.minimum(rng.integers(0, 8, len(a)), span[a])
    a_auth = a_start + rng.integers(10, 46, len(a))
    a_auth = np.where(closed[a], np.minimum(a_auth, end[a]), a_auth)
    keep = a[a_start <= extract]
    a_start, a_auth = a_start[a_start <= extract], a_auth[a_start <= extract]
    # factors from a known latent class structure (simulate/practice.py); their own random numbers
    factors, _ = practice_truth.draw_factors(np.random.default_rng([seed, 23]), len(keep))
    factors = pa.array(factors, type=pa.string())
    tables["assessments"] = pa.table({
        "la_code": la_col(keep), "referral_id": ref_col(keep), "child_id": child_col(keep),
        "start_date": _date_array(a_start), "authorised_date": _date_array(a_auth, valid=a_auth <= extract),
        "factors": factors,
    })

    # plans: a CIN plan (path 2); a CP plan, then often a step-down CIN plan (path 3)
    cin = np.flatnonzero(path == 2)
    cin_start = np.minimum(r0[cin] + rng.integers(20, 46, len(cin)), end[cin])
    cp = np.flatnonzero(path == 3)
    cp_start = np.minimum(r0[cp] + rng.integers(10, 40, len(cp)), end[cp])
    cp_len = ((rec["planned_close"][cp] - cp_start) * rng.uniform(0.45, 0.9, len(cp))).astype(np.int64)
    cp_end = np.minimum(cp_start + cp_len, end[cp])
    cp_end_seen = cp_end < end[cp]  # ended before the closure (or before the extract if open)
    step = rng.random(len(cp)) < 0.7
    sd = cp[step]
    plan_ref = np.concatenate([cin, cp, sd])
    p_start = np.concatenate([cin_start, cp_start, cp_end[step]])
    p_end = np.concatenate([end[cin], cp_end, end[sd]])
    p_end_ok = np.concatenate([closed[cin], cp_end_seen | closed[cp], closed[sd]]) & (p_end <= extract)
    p_type = np.concatenate([np.zeros(len(cin), int), np.ones(len(cp), int), np.zeros(len(sd), int)])
    abuse = np.concatenate([np.zeros(len(cin), int), _categorical(rng.random(len(cp)), _p(_ABUSE_P, list(_ABUSE_P))),
                            np.zeros(len(sd), int)])
    keep = p_start <= extract
    rows = plan_ref[keep]
    tables["plans"] = pa.table({
        "la_code": la_col(rows), "referral_id": ref_col(rows), "child_id": child_col(rows),
        "plan_type": _take(contract.PLAN_TYPES, p_type[keep]),
        "start_date": _date_array(p_start[keep]),
        "end_date": _date_array(p_end[keep], valid=p_end_ok[keep]),
        "category_of_abuse": _nulls(_take(list(_ABUSE_P), abuse[keep]), p_type[keep] == 1),
    })

    # interventions: FGC during the referral (the modelled effect); the others have none
    t = np.flatnonzero(rec["treated"])
    t_start = r0[t] + np.floor(rng.random(len(t)) * (span[t] + 1)).astype(np.int64)
    t_end = t_start + rng.integers(7, 43, len(t))
    t_end = np.where(closed[t], np.minimum(t_end, end[t]), t_end)
    pp_p = np.where(np.isin(rec["need"], [contract.PRIMARY_NEED.index(n) for n in ("N4", "N5", "N6")]), 0.12, 0.05)
    pp = np.flatnonzero((path > 0) & (rng.random(n_ref) < pp_p))
    pp_start = r0[pp] + np.floor(rng.random(len(pp)) * (span[pp] + 1)).astype(np.int64)
    pp_end = pp_start + rng.integers(56, 85, len(pp))
    eh = np.flatnonzero(closed & (rec["reason"] == _REASONS.index("RC9")) & (rng.random(n_ref) < 0.8))
    eh_start = rec["close"][eh] + rng.integers(1, 22, len(eh))
    eh_end = eh_start + rng.integers(60, 241, len(eh))
    i_ref = np.concatenate([t, pp, eh])
    i_start = np.concatenate([t_start, pp_start, eh_start])
    i_end = np.concatenate([t_end, pp_end, eh_end])
    i_kind = np.repeat([0, 1, 2], [len(t), len(pp), len(eh)])
    keep = i_start <= extract
    rows = i_ref[keep]
    tables["interventions"] = pa.table({
        "la_code": la_col(rows), "child_id": child_col(rows),
        "intervention": _take((INTERVENTION, "Parenting Programme", "Early Help"), i_kind[keep]),
        "start_date": _date_array(i_start[keep]),
        "end_date": _date_array(i_end[keep], valid=(i_end <= extract)[keep]),
        "referral_id": _nulls(ref_col(rows), i_kind[keep] < 2),  # Early Help follows a closure
    })

    # allocations: workers on every referral that was not NFA, with changes of worker
    teams = (("Assessment Team", 3), ("Children in Need Team", 3), ("Safeguarding Team", 3),
             ("Disabled Children's Team", 1))
    team_names = [name if n == 1 else f"{name} {i + 1}" for name, n in teams for i in range(n)]
    team_n = np.array([n for _, n in teams])
    team_lo = np.concatenate([[0], np.cumsum(team_n)[:-1]])
    per_team = max(3, n_per // 120)
    n_workers = len(team_names) * per_team
    worker_id = _pad_ids("W", _distinct_numbers(rng, n_la, n_workers, max(2, 9000 // n_workers)).reshape(-1), 4)
    if planted:
        rows = np.arange(n_la) * n_workers  # each council's first worker (assessment team 1)
        planted_ids["worker_id"] = [PLANTED["worker_id"].format(i + 1) for i in range(n_la)]
        worker_id = _plant(worker_id, rows, planted_ids["worker_id"])
    al = np.flatnonzero(path > 0)
    al_start = r0[al] + np.minimum(rng.integers(0, 4, len(al)), span[al])
    n_seg = 1 + rec["changes"][al]  # each change of worker has a known effect on re-referral
    row, s, e = _segments(rng, al_start, end[al], n_seg)
    ref_row = al[row]
    first_seg = np.r_[True, row[1:] != row[:-1]]
    last_seg = np.r_[row[1:] != row[:-1], True]
    disabled_team = (rec["need"][ref_row] == contract.PRIMARY_NEED.index("N2")) & ch.disabled[c[ref_row]]
    kind = np.where(first_seg & (path[ref_row] != 3), 0, np.where(path[ref_row] == 3, 2, 1))
    kind = np.where(disabled_team & ~first_seg, 3, kind)
    team = team_lo[kind] + np.floor(rng.random(len(row)) * team_n[kind]).astype(np.int64)
    slot = rng.integers(0, per_team, len(row))
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
    e_ok = ~(last_seg & ~closed[ref_row]) & (e <= extract)
    keep = s <= extract
    rows = ref_row[keep]
    tables["allocations"] = pa.table({
        "la_code": la_col(rows), "child_id": child_col(rows),
        "worker_id": worker_id.take(pa.array(worker[keep])), "start_date": _date_array(s[keep]),
        "end_date": _date_array(e[keep], valid=e_ok[keep]),
        "team": _take(team_names, team[keep]),
    })
    return tables, planted_ids


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
                pacsv.write_csv(table, fh, write_options=pacsv.WriteOptions(
                    quoting_style="none", include_header=False))


# --- the entry point -----------------------------------------------------------------


#: Files that make a folder look like a council's extract (what the readers would read).
EXTRACT_SUFFIXES = (".csv", ".parquet", ".xlsx", ".xls", ".xml")


def made_by_synth(folder: Path) -> bool:
    """True when ``folder`` holds synthetic data this module wrote (its truth.json says so)."""
    try:
        truth = json.loads((Path(folder) / "truth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(truth, dict) and isinstance(truth.get("generator"), dict) and "seed" in truth["generator"]


def _previous_format(out: Path) -> str | None:
    if not made_by_synth(out):
        return None
    fmt = json.loads((out / "truth.json").read_text(encoding="utf-8"))["generator"].get("format")
    return fmt if fmt in ("csv", "parquet") else None


def check_out_dir(out: Path, force: bool = False) -> None:
    """Refuse to write synthetic data over an extract that synth did not write (a council's real data).

    A folder synth wrote itself (truth.json names its generator) is replaced; ``force``
    writes anyway (only the files synth writes are replaced)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder; give --out a folder for the synthetic data.")
    if force or not out.is_dir() or made_by_synth(out):
        return
    found = sorted(p.name for p in out.iterdir()
                   if p.is_file() and (p.suffix.lower() in EXTRACT_SUFFIXES or p.name == "truth.json"))
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise InputError(f"{out} already holds an extract that insight synth did not write ({shown}); "
                         "choose another folder, or add --force to replace those files with synthetic data.")


def generate(n_councils: int, children_per_council: int, seed: int, out_dir, extract_date="2025-03-31", *,
             la_codes=None, fmt: str = "csv", planted_identifiers: bool = False,
             model: Model = MODEL, force: bool = False) -> Path:
    """Write a synthetic data directory (canonical tables + truth.json) and return its path.

    ``la_codes`` picks the councils (then ``n_councils`` is ignored); otherwise the seed
    picks ``n_councils`` of the 153. ``fmt="parquet"`` writes Parquet instead of CSV.
    ``planted_identifiers`` makes two children and one worker per council carry
    recognisable identifiers (listed in truth.json) for privacy tests. ``model`` changes
    any parameter of the generative model (``Model``). docs/synthetic-data.md explains all.
    An extract synth did not write is never replaced unless ``force`` (``check_out_dir``).
    """
    if fmt not in ("csv", "parquet"):
        raise InputError(f"synthetic data: fmt must be 'csv' or 'parquet', not {fmt!r}.")
    if children_per_council < 1:
        raise InputError("synthetic data: children_per_council must be at least 1.")
    out = Path(out_dir)
    check_out_dir(out, force)
    previous_fmt = _previous_format(out)
    out.mkdir(parents=True, exist_ok=True)
    councils = choose_councils(n_councils, seed, la_codes)
    n_la = len(councils)
    extract = _day(extract_date)
    extract_str = str(np.datetime64(extract, "D"))
    start = _day(pd.Timestamp(extract_str) - pd.DateOffset(years=model.window_years)) + 1

    # programme adoption: about half the councils, staggered over twenty quarters
    rng = np.random.default_rng([seed, 11])
    first_q = int(_quarter(np.array([_day(pd.Timestamp(extract_str) + pd.Timedelta(days=1)
                                          - pd.DateOffset(years=6, months=3))]))[0])
    n_adopt = 1 if n_la == 1 else min(math.ceil(n_la * model.adoption_share), n_la - 1)
    adopt_q = np.full(n_la, -1, dtype=np.int64)
    adopters = rng.choice(n_la, size=n_adopt, replace=False)
    # distinct quarters while there are fewer adopters than quarters, then every quarter in turn
    spread = rng.choice(20, size=n_adopt, replace=False) if n_adopt <= 20 else rng.permutation(np.arange(n_adopt) % 20)
    adopt_q[adopters] = first_q + spread

    pub = reference.latest_published_rereferral_rate()
    fallback = reference.ENGLAND_REREFERRAL_RATE.get(pd.Timestamp(extract_str).year, 0.22)
    published = councils["la_code"].map(pub["rate"]).to_numpy(dtype=float)
    pub_year = councils["la_code"].map(pub["year"]).to_numpy(dtype=float)
    targets = np.clip(np.where(np.isnan(published), fallback, published), *model.target_bounds)

    ch = _make_children(councils, children_per_council, seed, start, extract)
    log_lambda = _calibrate(ch, targets, adopt_q, extract, model)
    res = _simulate(ch, log_lambda, adopt_q, extract, model, record=True)
    rec = res["records"]
    achieved = res["n_rerefer"] / np.maximum(res["n_year"], 1)

    tables, planted_ids = _build_tables(ch, rec, councils, extract, seed, planted_identifiers)
    generator = {"seed": seed, "n_councils": n_la, "children_per_council": children_per_council,
                 "extract_date": extract_str, "window_start": str(np.datetime64(start, "D")), "format": fmt}
    # truth.json first (completed below): a folder left half-written is still known as synth's own
    (out / "truth.json").write_text(json.dumps({"generator": generator}, indent=2))
    _write(tables, out, fmt)
    if previous_fmt and previous_fmt != fmt:  # synth's own tables in the other format would be read twice
        for name in tables:
            (out / f"{name}.{previous_fmt}").unlink(missing_ok=True)

    need_ref = model.primary_need_hr[model.primary_need_reference]
    truth = {
        "generator": generator,
        "model": {
            "cumulative_hazard": "Lambda(t | x) = baseline_scale[la_code] * exp(x'beta) * "
                                 "intervention_hr^fgc * programme_hr(q) * t^shape, t in days since closure",
            "shape": model.weibull_shape,
            "baseline_scale": {c: float(np.exp(v)) for c, v in zip(councils["la_code"], log_lambda)},
            "age_band_edges_years": list(AGE_BAND_EDGES),
            "age_at_closure": "(closure_date - date_of_birth) in days / 365.25",
        },
        "hazard_ratios": {
            "primary_need": {"reference": model.primary_need_reference,
                             **{k: v / need_ref for k, v in model.primary_need_hr.items()
                                if k != model.primary_need_reference}},
            "age_band_at_closure": {"reference": AGE_BANDS[0],
                                    **{b: model.age_band_hr[b] / model.age_band_hr[AGE_BANDS[0]]
                                       for b in AGE_BANDS[1:]}},
            "referral_nfa": model.referral_nfa_hr,
            "previous_referrals": {"reference": "0", **{b: model.previous_referrals_hr[b]
                                                        for b in PREVIOUS_REFERRAL_BANDS[1:]}},
            "disability": model.disability_hr,
            "intervention": {INTERVENTION: model.intervention_hr,
                             **{name: 1.0 for name in OTHER_INTERVENTIONS}},
            "closure_reason": 1.0,
            "sex": 1.0,
            "ethnicity": 1.0,
            "referral_source": 1.0,
        },
        "intervention": _intervention_truth(rec, ch, model),
        "practice": practice_truth.truth(councils, {"London": _ETH_P_LONDON, "elsewhere": _ETH_P}),
        "programme": _programme_truth(rec, ch, councils, adopt_q, model, extract, start),
        "national_rereferral_rate": float(res["n_rerefer"].sum() / max(res["n_year"].sum(), 1)),
        "england_published_rereferral_rate": fallback,
        "rereferral_measure": "share of referrals in the 12 months to the extract date with a previous "
                              "referral of the same child in the 365 days before (DfE)",
        "councils": {
            c: {"la_name": n, "published_rereferral_rate": None if np.isnan(p) else float(p),
                "published_year": None if np.isnan(y) else int(y), "target_rereferral_rate": float(t),
                "rereferral_rate": float(a), "referrals_in_year": int(ny)}
            for c, n, p, y, t, a, ny in zip(councils["la_code"], councils["la_name"], published, pub_year,
                                             targets, achieved, res["n_year"])
        },
        "counts": {name: int(t.num_rows) for name, t in tables.items()},
        "planted_identifiers": planted_ids if planted_identifiers else {},
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    from insightlib.ingest.warehouse import SYNTHETIC_FILE

    (out / SYNTHETIC_FILE).write_text(json.dumps({
        "synthetic": True, "made_by": "insight synth", "seed": seed,
        "note": "Made-up data for demonstration and tests: no real child, and no real council's figures."}, indent=2))
    return out
