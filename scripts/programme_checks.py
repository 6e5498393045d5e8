#!/usr/bin/env python3
"""Print the figures docs/programme.md quotes for programme evaluation with few councils.

    python scripts/programme_checks.py [REPEATS]      # default 300 repeats (about 3 minutes on 2 cores)

1. Neighbour comparisons on DfE's published rates: the false-positive rate of the model's own 95%
   interval over every council's every made-up start year, and of the calibrated interval judged
   against the threshold from the other councils only (leave one council out).
2. The headline interval with 3 adopters of 8 councils: coverage of randomisation inference and of
   the clustered t interval over REPEATS simulated panels (constant effect, AR(1) noise).
The slow tests hold both (test_calibrated_neighbour_comparison_false_positive_rate_is_nominal,
test_randomisation_interval_coverage_with_three_adopters); this prints them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from insightlib.analyses import programme_councils  # noqa: E402
from insightlib.stats import did, did_randomisation  # noqa: E402
from test_programme import few_adopters_panel  # noqa: E402


def main(repeats: int) -> None:
    t0 = time.perf_counter()
    cal = programme_councils.neighbour_calibration()
    fpr = programme_councils.neighbour_false_positive_rate()
    lo, hi = fpr["calibrated_rate_ci"]
    print(f"neighbour comparison, {fpr['draws']:,} placebo start years of {fpr['councils']} councils: model's own interval "
          f"rejects {fpr['uncalibrated_rate']:.1%}; calibrated (|t| > {cal.critical_value:.2f}, leave one council out) "
          f"{fpr['calibrated_rate']:.1%} (95% interval {lo:.1%} to {hi:.1%})")
    rng = np.random.default_rng(0)
    ri_hits, t_hits = [], []
    for _ in range(repeats):
        d = did.estimation_sample(few_adopters_panel(rng), "rereferral_rate", "la_code", "period", "adoption_period", None).data
        ri = did_randomisation.randomisation_interval(d)
        cl = did.did2s_fast(d, ["post"], 0.05)["post"]
        ri_hits.append(ri["ci_low"] <= -2.0 <= ri["ci_high"])
        t_hits.append(cl["ci_low"] <= -2.0 <= cl["ci_high"])
    print(f"3 adopters of 8 councils, {repeats} repeats: randomisation inference covers {np.mean(ri_hits):.3f}, "
          f"clustered t (G - 1 df) covers {np.mean(t_hits):.3f}  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
