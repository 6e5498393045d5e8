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
from pathlib import Path

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.errors import InputError
from insightlib.simulate import practice as practice_truth
from insightlib.simulate.renewal import _calibrate, _make_children, _simulate
from insightlib.simulate.synth_model import (
    _ETH_P,
    _ETH_P_LONDON,
    AGE_BAND_EDGES,
    AGE_BANDS,
    INTERVENTION,
    MODEL,
    OTHER_INTERVENTIONS,
    PREVIOUS_REFERRAL_BANDS,
    Model,
    _day,
    _quarter,
    choose_councils,
)
from insightlib.simulate.synth_tables import _build_tables, _write
from insightlib.simulate.synth_truth import _intervention_truth, _programme_truth

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
    found = sorted(
        p.name
        for p in out.iterdir()
        if p.is_file() and (p.suffix.lower() in EXTRACT_SUFFIXES or p.name == "truth.json")
    )
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise InputError(
            f"{out} already holds an extract that insight synth did not write ({shown}); "
            "choose another folder, or add --force to replace those files with synthetic data."
        )


def generate(
    n_councils: int,
    children_per_council: int,
    seed: int,
    out_dir,
    extract_date="2025-03-31",
    *,
    la_codes=None,
    fmt: str = "csv",
    planted_identifiers: bool = False,
    model: Model = MODEL,
    force: bool = False,
) -> Path:
    """Write a synthetic data directory (canonical tables + truth.json) and return its path.

    ``la_codes`` picks the councils (then ``n_councils`` is ignored); otherwise the seed
    picks ``n_councils`` of the 153. ``fmt="parquet"`` writes Parquet instead of CSV.
    ``planted_identifiers`` makes two children and one worker per council carry
    recognisable identifiers (listed in truth.json) for privacy tests. ``model`` changes
    any parameter of the generative model (``Model``). docs/synthetic-data.md explains all.
    An extract synth did not write is never replaced unless ``force`` (``check_out_dir``).
    """
    _check_arguments(fmt, children_per_council)
    out = Path(out_dir)
    check_out_dir(out, force)
    previous_fmt = _previous_format(out)
    out.mkdir(parents=True, exist_ok=True)
    councils = choose_councils(n_councils, seed, la_codes)
    n_la = len(councils)
    extract = _day(extract_date)
    extract_str = str(np.datetime64(extract, "D"))
    start = _day(pd.Timestamp(extract_str) - pd.DateOffset(years=model.window_years)) + 1
    adopt_q = _adoption_quarters(seed, n_la, extract_str, model)
    published, pub_year, targets, fallback = _targets(councils, extract_str, model)

    ch = _make_children(councils, children_per_council, seed, start, extract)
    log_lambda = _calibrate(ch, targets, adopt_q, extract, model)
    res = _simulate(ch, log_lambda, adopt_q, extract, model, record=True)
    rec = res["records"]
    achieved = res["n_rerefer"] / np.maximum(res["n_year"], 1)

    tables, planted_ids = _build_tables(ch, rec, councils, extract, seed, planted_identifiers)
    generator = _generator(seed, n_la, children_per_council, extract_str, start, fmt)
    _write_tables(out, generator, tables, fmt, previous_fmt)
    truth = {
        "generator": generator,
        **_model_truth(model, councils, log_lambda),
        **_analyses_truth(rec, ch, councils, adopt_q, model, extract, start),
        "national_rereferral_rate": float(res["n_rerefer"].sum() / max(res["n_year"].sum(), 1)),
        "england_published_rereferral_rate": fallback,
        "rereferral_measure": "share of referrals in the 12 months to the extract date with a previous "
        "referral of the same child in the 365 days before (DfE)",
        "councils": _councils_truth(councils, published, pub_year, targets, achieved, res["n_year"]),
        "counts": {name: int(t.num_rows) for name, t in tables.items()},
        "planted_identifiers": planted_ids if planted_identifiers else {},
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    _write_marker(out, seed)
    return out


def _check_arguments(fmt: str, children_per_council: int) -> None:
    if fmt not in ("csv", "parquet"):
        raise InputError(f"synthetic data: fmt must be 'csv' or 'parquet', not {fmt!r}.")
    if children_per_council < 1:
        raise InputError("synthetic data: children_per_council must be at least 1.")


def _generator(seed: int, n_la: int, children_per_council: int, extract_str: str, start: int, fmt: str) -> dict:
    """truth.json's "generator": how the data were made (written first, see _write_tables)."""
    return {
        "seed": seed,
        "n_councils": n_la,
        "children_per_council": children_per_council,
        "extract_date": extract_str,
        "window_start": str(np.datetime64(start, "D")),
        "format": fmt,
    }


def _analyses_truth(rec, ch, councils, adopt_q, model: Model, extract: int, start: int) -> dict:
    """truth.json's "intervention", "practice" and "programme": what each analysis should recover."""
    return {
        "intervention": _intervention_truth(rec, ch, model),
        "practice": practice_truth.truth(councils, {"London": _ETH_P_LONDON, "elsewhere": _ETH_P}),
        "programme": _programme_truth(rec, ch, councils, adopt_q, model, extract, start),
    }


def _write_tables(out: Path, generator: dict, tables: dict, fmt: str, previous_fmt: str | None) -> None:
    """The tables, after a first truth.json: a folder left half-written is still known as synth's own."""
    (out / "truth.json").write_text(json.dumps({"generator": generator}, indent=2))
    _write(tables, out, fmt)
    if previous_fmt and previous_fmt != fmt:  # synth's own tables in the other format would be read twice
        for name in tables:
            (out / f"{name}.{previous_fmt}").unlink(missing_ok=True)


def _write_marker(out: Path, seed: int) -> None:
    """SYNTHETIC.json: the marker insight load carries into the warehouse (every report says so)."""
    from insightlib.ingest.warehouse import SYNTHETIC_FILE

    (out / SYNTHETIC_FILE).write_text(
        json.dumps(
            {
                "synthetic": True,
                "made_by": "insight synth",
                "seed": seed,
                "note": "Made-up data for demonstration and tests: no real child, and no real council's figures.",
            },
            indent=2,
        )
    )


def _councils_truth(councils, published, pub_year, targets, achieved, n_year) -> dict:
    """truth.json's "councils": each council's published, target and achieved re-referral rate."""
    return {
        c: {
            "la_name": n,
            "published_rereferral_rate": None if np.isnan(p) else float(p),
            "published_year": None if np.isnan(y) else int(y),
            "target_rereferral_rate": float(t),
            "rereferral_rate": float(a),
            "referrals_in_year": int(ny),
        }
        for c, n, p, y, t, a, ny in zip(
            councils["la_code"], councils["la_name"], published, pub_year, targets, achieved, n_year
        )
    }


def _adoption_quarters(seed: int, n_la: int, extract_str: str, model: Model) -> np.ndarray:
    """Programme adoption: about half the councils, staggered over twenty quarters (-1: never adopts)."""
    rng = np.random.default_rng([seed, 11])
    first_q = int(
        _quarter(np.array([_day(pd.Timestamp(extract_str) + pd.Timedelta(days=1) - pd.DateOffset(years=6, months=3))]))[
            0
        ]
    )
    n_adopt = 1 if n_la == 1 else min(math.ceil(n_la * model.adoption_share), n_la - 1)
    adopt_q = np.full(n_la, -1, dtype=np.int64)
    adopters = rng.choice(n_la, size=n_adopt, replace=False)
    # distinct quarters while there are fewer adopters than quarters, then every quarter in turn
    spread = rng.choice(20, size=n_adopt, replace=False) if n_adopt <= 20 else rng.permutation(np.arange(n_adopt) % 20)
    adopt_q[adopters] = first_q + spread
    return adopt_q


def _targets(councils: pd.DataFrame, extract_str: str, model: Model):
    """Each council's target re-referral rate: its latest published rate (England's where it has none),
    kept within the model's bounds. Returns (published, published year, target, England's fallback)."""
    pub = reference.latest_published_rereferral_rate()
    fallback = reference.ENGLAND_REREFERRAL_RATE.get(pd.Timestamp(extract_str).year, 0.22)
    published = councils["la_code"].map(pub["rate"]).to_numpy(dtype=float)
    pub_year = councils["la_code"].map(pub["year"]).to_numpy(dtype=float)
    targets = np.clip(np.where(np.isnan(published), fallback, published), *model.target_bounds)
    return published, pub_year, targets, fallback


def _model_truth(model: Model, councils: pd.DataFrame, log_lambda: np.ndarray) -> dict:
    """truth.json's "model" and "hazard_ratios": the cumulative hazard and every hazard ratio of the model."""
    need_ref = model.primary_need_hr[model.primary_need_reference]
    return {
        "model": {
            "cumulative_hazard": "Lambda(t | x) = baseline_scale[la_code] * exp(x'beta) * "
            "intervention_hr^fgc * programme_hr(q) * t^shape, t in days since closure",
            "shape": model.weibull_shape,
            "baseline_scale": {c: float(np.exp(v)) for c, v in zip(councils["la_code"], log_lambda)},
            "age_band_edges_years": list(AGE_BAND_EDGES),
            "age_at_closure": "(closure_date - date_of_birth) in days / 365.25",
        },
        "hazard_ratios": {
            "primary_need": {
                "reference": model.primary_need_reference,
                **{k: v / need_ref for k, v in model.primary_need_hr.items() if k != model.primary_need_reference},
            },
            "age_band_at_closure": {
                "reference": AGE_BANDS[0],
                **{b: model.age_band_hr[b] / model.age_band_hr[AGE_BANDS[0]] for b in AGE_BANDS[1:]},
            },
            "referral_nfa": model.referral_nfa_hr,
            "previous_referrals": {
                "reference": "0",
                **{b: model.previous_referrals_hr[b] for b in PREVIOUS_REFERRAL_BANDS[1:]},
            },
            "disability": model.disability_hr,
            "intervention": {INTERVENTION: model.intervention_hr, **{name: 1.0 for name in OTHER_INTERVENTIONS}},
            "closure_reason": 1.0,
            "sex": 1.0,
            "ethnicity": 1.0,
            "referral_source": 1.0,
        },
    }
