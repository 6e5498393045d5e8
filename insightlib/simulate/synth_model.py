"""The synthetic councils' model: its parameters, code lists, counter-based random numbers, dates, councils.

docs/synthetic-data.md has every detail. ``Model`` holds every parameter of the generative
model; simulate/renewal.py runs it, simulate/synth_truth.py says what it implies,
simulate/synth_tables.py writes the tables a council would extract, simulate/synth.py ties them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from insightlib import contract, reference
from insightlib.errors import InputError

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
    primary_need_hr: dict = field(
        default_factory=lambda: {
            "N0": 1.0,
            "N1": 1.4,
            "N2": 0.7,
            "N3": 1.1,
            "N4": 1.0,
            "N5": 1.25,
            "N6": 1.15,
            "N7": 0.9,
            "N8": 1.3,
            "N9": 0.6,
        }
    )
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

_NEED_P = {
    "N0": 0.03,
    "N1": 0.50,
    "N2": 0.07,
    "N3": 0.04,
    "N4": 0.12,
    "N5": 0.11,
    "N6": 0.05,
    "N7": 0.01,
    "N8": 0.03,
    "N9": 0.04,
}
_SOURCE_P = {
    "1A": 3,
    "1B": 0.5,
    "1C": 1,
    "1D": 2.5,
    "2A": 20,
    "2B": 1.5,
    "3A": 1.5,
    "3B": 2,
    "3C": 0.5,
    "3D": 1,
    "3E": 3,
    "3F": 6,
    "4": 2,
    "5A": 4,
    "5B": 2,
    "5C": 2,
    "5D": 4,
    "6": 29,
    "7": 3,
    "8": 5,
    "9": 2,
    "10": 3,
}
_ETH_P = {
    "WBRI": 62,
    "WIRI": 0.3,
    "WIRT": 0.2,
    "WOTH": 5,
    "WROM": 1,
    "MWBC": 3,
    "MWBA": 1,
    "MWAS": 1,
    "MOTH": 2.5,
    "AIND": 1,
    "APKN": 3,
    "ABAN": 1,
    "AOTH": 1.5,
    "BCRB": 1,
    "BAFR": 3.5,
    "BOTH": 1,
    "CHNE": 0.2,
    "OOTH": 2.5,
    "REFU": 2,
    "NOBT": 6,
}
_ETH_P_LONDON = {
    "WBRI": 24,
    "WIRI": 0.5,
    "WIRT": 0.3,
    "WOTH": 11,
    "WROM": 1.5,
    "MWBC": 5,
    "MWBA": 2,
    "MWAS": 2,
    "MOTH": 6,
    "AIND": 3,
    "APKN": 3,
    "ABAN": 5,
    "AOTH": 4,
    "BCRB": 5,
    "BAFR": 11,
    "BOTH": 5,
    "CHNE": 0.5,
    "OOTH": 6,
    "REFU": 2,
    "NOBT": 3.2,
}
_DISABILITY_P = {
    "AUT": 30,
    "LD": 20,
    "BEH": 15,
    "COMM": 10,
    "CON": 5,
    "MOB": 5,
    "HAND": 3,
    "PC": 3,
    "INC": 2,
    "HEAR": 3,
    "VIS": 2,
    "DDA": 2,
}
_DISABILITY_CODES = tuple(_DISABILITY_P)
_PAIRS = [(i, j) for i in range(len(_DISABILITY_CODES)) for j in range(i + 1, len(_DISABILITY_CODES))]
#: every disability value a synthetic child can have: NONE, one code, or two codes
DISABILITY_VALUES = (
    ("NONE",) + _DISABILITY_CODES + tuple(f"{_DISABILITY_CODES[i]};{_DISABILITY_CODES[j]}" for i, j in _PAIRS)
)
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
(
    C_COUNCIL_CHILD,
    C_FIRST,
    C_AGE,
    C_AGE_FRAC,
    C_SEX,
    C_ETH,
    C_DIS,
    C_DIS2,
    C_DIS_CODE,
    C_DIS_CODE2,
    C_USUAL_NEED,
    C_USUAL_N2,
) = range(20, 32)

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
            raise InputError(
                f"synthetic data: unknown council code(s) {', '.join(unknown)}; "
                "use 3-digit codes from the DfE list (insightlib.reference.local_authorities())."
            )
        chosen = la[la["la_code"].isin(la_codes)]
    else:
        if not 1 <= n_councils <= len(la):
            raise InputError(f"synthetic data: n_councils must be between 1 and {len(la)}, not {n_councils}.")
        rng = np.random.default_rng([seed, 153])
        chosen = la.iloc[np.sort(rng.choice(len(la), size=n_councils, replace=False))]
    return chosen.sort_values("la_code").reset_index(drop=True)


def _log_hr_tables(model: Model):
    need = np.log(
        [model.primary_need_hr[k] / model.primary_need_hr[model.primary_need_reference] for k in contract.PRIMARY_NEED]
    )
    age = np.log([model.age_band_hr[b] / model.age_band_hr[AGE_BANDS[0]] for b in AGE_BANDS])
    prev = np.log([model.previous_referrals_hr[b] / model.previous_referrals_hr["0"] for b in PREVIOUS_REFERRAL_BANDS])
    return need, age, prev


def age_band(age_years) -> np.ndarray:
    """Index into AGE_BANDS of an age at closure in years (days / 365.25)."""
    return np.searchsorted(np.array(AGE_BAND_EDGES), np.asarray(age_years, dtype=float), side="right")


def previous_referrals_band(n) -> np.ndarray:
    return np.minimum(np.asarray(n), len(PREVIOUS_REFERRAL_BANDS) - 1)


def _log_fgc_by_need(model) -> np.ndarray:
    """Log hazard ratio of the conference for each primary need (index into contract.PRIMARY_NEED)."""
    return np.array(
        [math.log(model.intervention_hr_by_need.get(k, model.intervention_hr)) for k in contract.PRIMARY_NEED]
    )
