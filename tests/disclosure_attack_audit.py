"""The adversary's reader of the risk-model audit (docs/publishing.md, identities 13 and 14).

The audit publishes rates, not counts, but every rate is a count over a count the page gives: the later
period's cases ``N`` (the method's sentence), and per model the re-referred ``D``, the flagged ``F`` and the
flagged who were re-referred ``TP``; per group of the primary model its cases ``n``, re-referred ``d``,
flagged ``f`` and flagged-and-re-referred ``tp`` (so false positives ``f - tp``, false negatives ``d - tp``);
per tenth of the score on the calibration chart its re-referred. Written as integer linear constraints on
the ``Model`` of ``disclosure_attack``.
"""

from __future__ import annotations

import re

import numpy as np
from bs4 import BeautifulSoup
from disclosure_attack import Model, Target, _tables, _text, model_threshold

_PCT = re.compile(r"(-?[\d.]+)%")
_MEASURES = {"Precision at the threshold": "precision", "Recall at the threshold": "recall",
             "Share flagged": "flag_share", "Re-referred within a year": "base_rate"}


def _share(model: Model, num: dict, den: dict, share: float, half: float, why: str) -> None:
    """``share`` (rounded by ``half``) = num / den, with num and den linear expressions: two linear rows."""
    model.cells += 1
    for bound, s in (("hi", share + half), ("lo", share - half)):
        expr = dict(num)
        for v, c in den.items():
            expr[v] = expr.get(v, 0) - s * c
        model.add(expr, **{bound: 0}, why=why)


def _first_pct(cell: str) -> float | None:
    m = _PCT.match(cell.strip())
    return float(m.group(1)) / 100 if m else None


def read_audit(model: Model, html: str, chart_texts: list[str], truth: dict) -> None:
    """Every count-bearing figure of the audit page (identity 13: overall and by group; 14: calibration).

    Overall, per model: the base rate (0.1%) of N is D, the share flagged is F, precision TP / F, recall
    TP / D; the bars table's precision (2 decimals) and the sentence's "of 10 children flagged, about n"
    (tenths) bound TP / F again. By group (each grouping of the fairness tables partitions the N cases):
    the groups' n, d, f and tp add up to N, D, F and TP of the primary model; a shown row's flag rate (1%)
    is f / n, its false-positive rate (f - tp) / (n - d), its false-negative rate (d - tp) / d, its flag
    rate against everyone's (0.01) (f / n) / (F / N). Targets: every such count whose truth is from 1 to
    threshold - 1, hidden or not (a shown rate of a small count is as much a disclosure as a shown count)."""
    soup = BeautifulSoup(html, "html.parser")
    tables = _tables(soup)
    text = _text(BeautifulSoup(html, "html.parser"))
    thr = model_threshold(truth)
    m = re.search(r"judged on the ([\d,]+) cases that closed", text)
    n_all = model.var("ra:N", truth=truth.get("N"))
    if m:
        model.cells += 1
        model.fix(n_all, int(m.group(1).replace(",", "")))
    models = truth.get("models", {})
    d_all = model.var("ra:D", truth=truth.get("D"))
    for label, mt in models.items():
        f, tp = model.var(f"ra:F[{label}]", truth=mt["F"]), model.var(f"ra:TP[{label}]", truth=mt["TP"])
        model.add({tp: 1, f: -1}, hi=0, why="flagged re-referred <= flagged")
        model.add({tp: 1, d_all: -1}, hi=0, why="flagged re-referred <= re-referred")
        model.add({f: 1, tp: -1, d_all: 1, n_all: -1}, hi=0, why="false positives <= not re-referred")
        _small(model, thr, {"TP": ({tp: 1}, mt["TP"]), "false positives": ({f: 1, tp: -1}, mt["F"] - mt["TP"]),
                            "false negatives": ({d_all: 1, tp: -1}, truth["D"] - mt["TP"])},
               f"overall, {label}")
    for corner, heads, rows in tables:
        if corner.startswith("Measure ("):
            _read_accuracy(model, heads, rows, models)
        elif heads and heads[0] == "Closed cases (later period)":
            _read_groups(model, corner.split(" (")[0], heads, rows, truth, thr)
        elif "Who" in heads and "Estimate" in heads:
            for cells in rows.values():
                row = dict(zip(heads, cells))
                if row["Who"] == "Everyone" and row["Bar"].startswith("Precision at least"):
                    p = truth["primary"]
                    _share(model, {f"ra:TP[{p}]": 1}, {f"ra:F[{p}]": 1}, float(row["Estimate"]), 0.005 + 1e-9,
                           "bars table: precision")
    mm = re.search(r"of 10 children flagged, about (\d+) would have been re-referred", text)
    if mm and truth.get("primary"):
        p = truth["primary"]
        _share(model, {f"ra:TP[{p}]": 1}, {f"ra:F[{p}]": 1}, int(mm.group(1)) / 10, 0.05 + 1e-9, "of 10 flagged")
    mm = re.search(r"of 10 children who were re-referred, the model would have flagged about (\d+)", text)
    if mm and truth.get("primary"):
        p = truth["primary"]
        _share(model, {f"ra:TP[{p}]": 1}, {d_all: 1}, int(mm.group(1)) / 10, 0.05 + 1e-9, "of 10 re-referred")
    read_calibration(model, chart_texts, truth, thr)


def _read_accuracy(model: Model, heads: list[str], rows: dict, models: dict) -> None:
    for label in models:
        if label not in heads:
            continue
        i = heads.index(label)
        f, tp, d, n = f"ra:F[{label}]", f"ra:TP[{label}]", "ra:D", "ra:N"
        for row_label, key in _MEASURES.items():
            s = _first_pct(rows.get(row_label, [""] * (i + 1))[i])
            if s is None:
                continue
            num, den = {"precision": ({tp: 1}, {f: 1}), "recall": ({tp: 1}, {d: 1}),
                        "flag_share": ({f: 1}, {n: 1}), "base_rate": ({d: 1}, {n: 1})}[key]
            _share(model, num, den, s, 0.0005 + 1e-9, f"{label}: {row_label}")


def _small(model: Model, thr: int, counts: dict, where: str) -> None:
    """Targets: each count (a linear expression) whose truth is from 1 to threshold - 1."""
    for what, (expr, t) in counts.items():
        if t is not None and 1 <= t < thr:
            name = f"ra:{where}|{what}"
            model.targets.append(Target(name, expr, t, f"{where}: {what}"))


def _read_groups(model: Model, heading: str, heads: list[str], rows: dict, truth: dict, thr: int) -> None:
    """One fairness table: its groups partition the later period's cases (identity 13)."""
    gt = truth.get("groups", {}).get(heading, {})
    p = truth["primary"]
    col = {h: i for i, h in enumerate(heads)}
    sums: dict[str, dict] = {"n": {}, "d": {}, "f": {}, "tp": {}}
    for g, cells in rows.items():
        t = gt.get(g, {})
        v = {k: model.var(f"ra:{heading}[{g}]|{k}", truth=t.get(k)) for k in ("n", "d", "f", "tp")}
        for k in sums:
            sums[k][v[k]] = 1
        model.published(v["n"], cells[0], t.get("n"), f"{heading} {g}: cases")
        model.add({v["d"]: 1, v["n"]: -1}, hi=0, why="re-referred <= cases")
        model.add({v["f"]: 1, v["n"]: -1}, hi=0, why="flagged <= cases")
        model.add({v["tp"]: 1, v["f"]: -1}, hi=0, why="tp <= flagged")
        model.add({v["tp"]: 1, v["d"]: -1}, hi=0, why="tp <= re-referred")
        model.add({v["f"]: 1, v["tp"]: -1, v["d"]: 1, v["n"]: -1}, hi=0, why="false positives <= not re-referred")
        fl = _first_pct(cells[col["Flagged"]])
        if fl is not None:
            _share(model, {v["f"]: 1}, {v["n"]: 1}, fl, 0.005 + 1e-9, f"{heading} {g}: flag rate")
        fp_col = next(i for h, i in col.items() if h.startswith("Flagged but not"))
        fn_col = next(i for h, i in col.items() if h.startswith("Re-referred but not"))
        r = _first_pct(cells[fp_col])
        if r is not None:
            _share(model, {v["f"]: 1, v["tp"]: -1}, {v["n"]: 1, v["d"]: -1}, r, 0.005 + 1e-9, f"{heading} {g}: FPR")
        r = _first_pct(cells[fn_col])
        if r is not None:
            _share(model, {v["d"]: 1, v["tp"]: -1}, {v["d"]: 1}, r, 0.005 + 1e-9, f"{heading} {g}: FNR")
        rri = re.match(r"(\d+\.\d\d) ", cells[col["Flag rate against everyone's (RRI)"]] + " ")
        n_shown = re.fullmatch(r"[\d,]+", cells[0].strip())
        if rri and n_shown:  # (f / n) / (F / N) with n and N known: f N = rri F n, linear
            n, big_n = int(cells[0].replace(",", "")), truth["N"]
            _share(model, {v["f"]: big_n}, {f"ra:F[{p}]": n}, float(rri.group(1)), 0.005 + 1e-9,
                   f"{heading} {g}: flag rate against everyone's")
        if t:
            _small(model, thr, {"cases": ({v["n"]: 1}, t["n"]), "re-referred": ({v["d"]: 1}, t["d"]),
                                "not re-referred": ({v["n"]: 1, v["d"]: -1}, t["n"] - t["d"]),
                                "flagged": ({v["f"]: 1}, t["f"]), "not flagged": ({v["n"]: 1, v["f"]: -1}, t["n"] - t["f"]),
                                "flagged and re-referred": ({v["tp"]: 1}, t["tp"]),
                                "flagged, not re-referred": ({v["f"]: 1, v["tp"]: -1}, t["f"] - t["tp"]),
                                "re-referred, not flagged": ({v["d"]: 1, v["tp"]: -1}, t["d"] - t["tp"])},
                   f"{heading} {g}")
    for k, total in (("n", "ra:N"), ("d", "ra:D"), ("f", f"ra:F[{p}]"), ("tp", f"ra:TP[{p}]")):
        model.add({**sums[k], total: -1}, 0, 0, f"{heading}: groups' {k} add up")


def read_calibration(model: Model, chart_texts: list[str], truth: dict, thr: int) -> None:
    """The calibration chart (identity 14): each tenth of the score drawn at (mean predicted, share
    re-referred), read exactly; the adversary is given each tenth's cases and mean score (a reader knows
    the tenths are of N, so their sizes within one; stronger than a reader), so a drawn point fixes that
    tenth's re-referred, and the tenths' re-referred add up to D."""
    for label, mt in truth.get("models", {}).items():
        bins = mt.get("bins", [])
        drawn = []
        for line in chart_texts:
            mm = re.match(r"curve \| Share re-referred \| (.+?) \| (.+)", line)
            if mm and mm.group(1) == label:
                drawn = [tuple(float(z) for z in p.split(":")) for p in mm.group(2).split(";")]
        ds = {}
        for j, b in enumerate(bins):
            d = model.var(f"ra:bin[{label}|{j}]", 0, b["cases"], truth=b["rereferred"])
            ds[d] = 1
            hit = [y for x, y in drawn if abs(x - b["predicted"]) < 1e-9 and np.isfinite(y)]
            if hit:
                model.cells += 1
                model.fix(d, round(hit[0] * b["cases"]))
            _small(model, thr, {"re-referred": ({d: 1}, b["rereferred"]),
                                "not re-referred": ({d: -1}, b["cases"] - b["rereferred"])},
                   f"{label}, tenth {j + 1} of the score")
        if ds:
            model.add({**ds, "ra:D": -1}, 0, 0, f"{label}: tenths' re-referred add up")


def audit_truth(result, threshold: int) -> dict:
    """The exact counts behind an audit page (for checking the adversary's identities and saying which
    counts are small only), recomputed from its unrounded point estimates."""
    from insightlib.report.risk_audit import GROUP_WORDS
    from insightlib.stats.risk_audit import MODEL_LABELS

    def whole(v) -> int:
        return int(round(float(v))) if np.isfinite(v) else 0

    primary = result.parameters["primary_model"]
    out: dict = {"threshold": threshold, "primary": MODEL_LABELS[primary], "models": {}, "groups": {}}
    for kind, a in result.models.items():
        n = int(a.cases)
        m = a.metrics
        f = whole(m["flag_share"].estimate * n)
        out["N"], out["D"] = n, whole(m["base_rate"].estimate * n)
        bins = [{"cases": int(r.cases), "rereferred": int(r.rereferred), "predicted": float(r.predicted)}
                for r in a.curve.itertuples()]
        out["models"][MODEL_LABELS[kind]] = {"F": f, "TP": whole(m["precision"].estimate * f) if f else 0,
                                             "bins": bins}
    for attr in result.groups_used:
        rows = {}
        for g, r in result.models[primary].groups[attr].iterrows():
            n = whole(r["cases"])
            d = whole(r["observed"] * n)
            fn = whole(r["false_negative_rate"] * d) if d else 0
            rows[str(g)] = {"n": n, "d": d, "f": whole(r["flag_rate"] * n), "tp": d - fn}
        out["groups"][GROUP_WORDS.get(attr, attr)] = rows
    return out
