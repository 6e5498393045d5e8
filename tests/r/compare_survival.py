"""Print each clustered survival quantity, ours against R (issue 11), on the test data of test_survival_r.py.

    .venv/bin/python tests/r/compare_survival.py

The assertions live in tests/test_survival_r.py; this only shows the figures side by side.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_survival_r import SCRIPT, _episodes  # noqa: E402
from insightlib.stats import competing_risks  # noqa: E402
from insightlib.stats import cox as cox_model  # noqa: E402
from insightlib.stats import logrank  # noqa: E402
from insightlib.stats import survival as surv  # noqa: E402
tmp = Path(tempfile.mkdtemp())
d = _episodes(); d.to_csv(str(tmp / "ep.csv"), index=False)
subprocess.run(["Rscript", str(SCRIPT), str(tmp / "ep.csv"), str(tmp / "out.csv")], check=True, capture_output=True)
ref = pd.read_csv(str(tmp / "out.csv")).set_index("key")["value"]
print(f"data: {len(d)} episodes, {d.id.nunique()} children")
km = surv.kaplan_meier(d.time, d.status, d.group, horizons=(365,), clusters=d.id)
kp = surv.kaplan_meier(d.time, d.status, d.group, horizons=(365,))
for g in "abc":
    c = km.curves[g]; i = np.searchsorted(c.time, 365, side="right") - 1
    cp = kp.curves[g]
    print(f"KM se at 365 group {g}: ours {c.se.iloc[i]:.10f} R {ref[f'kmc:{g}:365:se']:.10f} (unclustered {cp.se.iloc[i]:.6f})")
cif = competing_risks.cumulative_incidence(d.time, d.status, d.group, horizons=(365,), clusters=d.id)
for g in "abc":
    c = cif.curves[g]; i = np.searchsorted(c.time, 365, side="right") - 1
    print(f"CIF se at 365 group {g}: ours {c.se.iloc[i]:.10f} R {ref[f'cifc:{g}:365:se']:.10f}")
for v in ("group", "cgroup"):
    r = logrank.logrank_test(d.time, d.status, d[v], clusters=d.id)
    print(f"robust score ({v}): ours {r.statistic:.10f} R {ref[f'rscore:{v}:statistic']:.10f}; log-rank {r.logrank_statistic:.4f} (R survdiff {ref[f'logrank:{v}:statistic']:.4f})")
p = surv.rmst(d.time, d.status, d.group, 365).groups.set_index("group")
c = surv.rmst(d.time, d.status, d.group, 365, clusters=d.id)
cg = c.groups.set_index("group")
for g in "abcd":
    print(f"RMST se {g} ({int(cg.loc[g,'episodes'])} ep): unclustered ours {p.loc[g,'se']:.10f} R se(rmean) {ref[f'rmstc:{g}:se_unclustered']:.10f}; by child ours {cg.loc[g,'se']:.10f} R IJ {ref[f'rmstc:{g}:se']:.10f}")
for r in c.differences.itertuples():
    print(f"RMST diff {r.group}-{r.reference} se: ours {r.se:.10f} R IJ {ref[f'rmstdiff:{r.group}:se']:.10f}")
X = pd.concat([d[["x1", "x2", "x3"]], pd.DataFrame({"cgroup[g]": (d.cgroup == "g").astype(float), "cgroup[h]": (d.cgroup == "h").astype(float)})], axis=1)
for tr in ("km", "rank", "identity"):
    ph = cox_model.cox_ph(d.time, d.status, X, ph_transform=tr).ph.set_index("term")
    print(tr, "; ".join(f"{t}: {ph.loc[t,'statistic']:.8f} vs R {ref[f'zph:{tr}:{t}:chisq']:.8f}" for t in ph.index))
