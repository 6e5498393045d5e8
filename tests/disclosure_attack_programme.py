"""The adversary's readers of the programme report (docs/publishing.md, identities 8 and 12).

Its quarters drawn for a council (identity 8) and the interrupted time series' fitted line and the mean gaps
to the neighbours (identity 12), written as constraints on the ``Model`` of ``disclosure_attack``.
"""

from __future__ import annotations

import re

import numpy as np
from bs4 import BeautifulSoup
from disclosure_attack import Model, Target, _tables, model_threshold


# ---- the programme report ------------------------------------------------------------------------

def _reporting_year_of_quarter(q: int) -> int:
    return q // 4 + (1 if q % 4 >= 1 else 0)


def read_programme(model: Model, chart_texts: list[str], truth: dict) -> None:
    """The programme report with ``outcome: referrals``, for the council shown on its own: every quarter's
    referrals drawn on its interrupted-time-series chart (the observed points) and on the chart against its
    neighbours (its own line), read exactly; for a council that is its only neighbour, the neighbours' line. Identity (docs/publishing.md, identity 8): the four quarters of a
    year to 31 March add up to that year's referrals in DfE's measure on the re-referral report and the
    national page (``dfe:ref[year]``). Targets: every quarter not drawn whose truth is small."""
    quarters = truth.get("quarters", {})
    if not quarters:
        return
    thr = model_threshold(truth)
    name = truth.get("name", "")
    drawn: dict[int, float] = {}
    for line in chart_texts:
        mm = re.match(r"curve \| (.*?) \| (.+) \| (.+)", line)
        if not mm or not mm.group(1).startswith("Referrals"):
            continue
        label = mm.group(2)
        if truth.get("role") == "neighbour":
            if not label.startswith("The one neighbour"):
                continue  # the council is the focus council's only neighbour: that line is its own quarters
        elif not (label.startswith("Observed") or (name and label.startswith(name))):
            continue
        for p in mm.group(3).split(";"):
            x, y = (float(z) for z in p.split(":"))
            if np.isfinite(y):
                drawn[int(round(x))] = y
    for q, t in quarters.items():
        v = model.var(f"pg:q[{q}]", truth=t)
        if q in drawn:
            model.cells += 1
            model.fix(v, round(drawn[q]))
        elif 1 <= t < thr:
            model.targets.append(Target(v, {v: 1}, t, f"referrals in quarter {q // 4}Q{q % 4 + 1}"))
    by_year: dict[int, list[int]] = {}
    for q in quarters:
        by_year.setdefault(_reporting_year_of_quarter(q), []).append(q)
    for y, qs in by_year.items():
        ref = f"dfe:ref[{y}]"
        if len(qs) == 4 and ref in model.lower:
            model.add({**{f"pg:q[{q}]": 1 for q in qs}, ref: -1}, 0, 0, f"quarters of {y} add up to DfE's referrals")


# ---- the programme report's fitted lines and averages --------------------------------------------

def _lines(chart_texts: list[str], ylabel_start: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{label: (xs, ys)} of the curves drawn on charts whose y label starts so."""
    out = {}
    for line in chart_texts:
        mm = re.match(r"curve \| (.*?) \| (.+) \| (.+)", line)
        if mm and mm.group(1).startswith(ylabel_start):
            pts = np.array([[float(z) for z in p.split(":")] for p in mm.group(3).split(";")])
            out[mm.group(2)] = (pts[:, 0], pts[:, 1])
    return out


def _whitening(t: np.ndarray, phi: float) -> np.ndarray:
    """The matrix L of stats.timeseries.prais_winsten (L y is the whitened series), or I for least squares."""
    n = len(t)
    L = np.eye(n)
    if not np.isfinite(phi):
        return L
    rho = phi ** np.diff(t)
    scale = np.sqrt(1 - rho * rho)
    for i in range(1, n):
        L[i, i] = 1 / scale[i - 1]
        L[i, i - 1] = -rho[i - 1] / scale[i - 1]
    return L


_MONTHS = {"Jan-Mar": 0, "Apr-Jun": 1, "Jul-Sep": 2, "Oct-Dec": 3}


def _programme_published(html: str, name: str) -> dict:
    """The council's adoption quarter (the councils table) and its mean gaps to its neighbours (1 decimal)."""
    out: dict = {"gaps": {}}
    for corner, heads, rows in _tables(BeautifulSoup(html, "html.parser")):
        if "Adopted" in heads:
            for cells in rows.values():
                mm = re.match(r"(\w{3}-\w{3}) (\d{4})", cells[heads.index("Adopted")]) if cells[0] == name else None
                if mm:
                    out["start"] = int(mm.group(2)) * 4 + _MONTHS[mm.group(1)]
        if corner == "Gap between the council and its neighbours":
            for label, cells in rows.items():
                w = "before" if "before" in label else "after" if label.startswith("Average after") else None
                if w and re.fullmatch(r"[-+][\d,]+\.\d", cells[0]):
                    out["gaps"][w] = float(cells[0].replace(",", ""))
    return out


def read_programme_fits(model: Model, html: str, chart_texts: list[str], truth: dict) -> None:
    """The interrupted time series' fitted line and the mean gaps to the neighbours (identity 12).

    The segmented trend is drawn at every quarter of the council's series; read exactly it gives the four
    coefficients. Fitted on every quarter, hidden ones included, they satisfy the normal equations
    ``X' L' (L y - L X b) = 0`` with L the AR(1) whitening: four linear equations in the hidden quarters.
    (The autocorrelation phi is fitted too; the adversary is given its true value, which makes it stronger
    than a reader, who would have to solve for it.) Where the line is exactly the fit of the quarters shown
    alone (as the report now fits it), it says nothing about the hidden ones, and the adversary checks that.
    The gaps: each average before and after (1 decimal) times the number of periods averaged is the council's
    quarters less its neighbours' summed counts over their number, over those periods: linear too. Which
    periods are averaged: all those drawn on the neighbour chart (the code before this control) or those where
    neither line is hidden (now), told apart by the fit of the line above (or, without it, by the averages)."""
    from insightlib.stats.timeseries import segmented_regression

    quarters = truth.get("quarters", {})
    if not quarters or truth.get("role") != "focus":
        return
    lines = _lines(chart_texts, "Referrals")
    trend, cf = lines.get("Segmented trend"), lines.get("Trend had nothing changed")
    observed = next((v for k, v in lines.items() if k.startswith("Observed")), None)
    shown_only = None
    if trend is not None and cf is not None and observed is not None:
        t_all, fitted = trend
        s0 = float(cf[0][0])
        drawn = {int(round(x)): y for x, y in zip(*observed) if np.isfinite(y)}
        after = (t_all >= s0).astype(float)
        X = np.column_stack([np.ones_like(t_all), t_all - s0, after, (t_all - s0) * after])
        b = np.linalg.lstsq(X, fitted, rcond=None)[0]
        model.cells += len(t_all)
        ts = np.array([x for x in t_all if int(round(x)) in drawn])
        shown_only = False
        if len(ts) >= 5:
            fit, _ = segmented_regression(ts, np.array([drawn[int(round(x))] for x in ts]), s0)
            shown_only = bool(np.allclose(fit.params, b, rtol=1e-6, atol=1e-6))
        if not shown_only and len(t_all) - len(ts) > 0:
            L = _whitening(t_all, truth.get("its_phi", float("nan")))
            Xs = L @ X
            A = Xs.T @ L  # (4, n): A y = Xs' Xs b
            rhs = Xs.T @ Xs @ b
            for i in range(4):
                expr = {f"pg:q[{int(round(x))}]": float(A[i, j]) for j, x in enumerate(t_all)}
                tol = 1e-6 * (1 + np.abs(A[i]).sum() * max(1.0, np.abs(fitted).max()))
                model.add(expr, rhs[i] - tol, rhs[i] + tol, f"segmented trend: normal equation {i}")
    _read_gaps(model, chart_texts, truth, _programme_published(html, truth.get("name", "")), shown_only)


def _read_gaps(model: Model, chart_texts: list[str], truth: dict, published: dict, shown_only: bool | None) -> None:
    """The mean gaps to the neighbours before and after the start (1 decimal), as linear constraints."""
    gaps, s0 = published["gaps"], published.get("start")
    name = truth.get("name", "")
    lines = _lines(chart_texts, "Referrals")
    own = next((v for k, v in lines.items() if name and k.startswith(name)), None)
    nb_label = next((k for k in lines if k.startswith("The one neighbour") or k.startswith("Average of")), None)
    if len(gaps) < 2 or s0 is None or own is None or nb_label is None:
        return
    m = re.match(r"Average of (\d+)", nb_label)
    k = int(m.group(1)) if m else 1
    xs, own_y = own
    nb_y = lines[nb_label][1]
    nb_truth = truth.get("neighbour_sums", {})
    both = np.isfinite(own_y) & np.isfinite(nb_y)
    if shown_only is None:  # no fitted line to tell the code apart: the averages of the periods drawn decide
        g = own_y - nb_y
        shown_only = all(
            np.isfinite(gaps[w]) and (sel := both & (xs < s0 if w == "before" else xs >= s0)).any()
            and abs(g[sel].mean() - gaps[w]) <= 0.05 + 1e-9 for w in ("before", "after"))
    if shown_only:
        return  # averages of drawn values only: nothing about a hidden one
    for w in ("before", "after"):
        sel = (xs < s0) if w == "before" else (xs >= s0)
        n = int(sel.sum())
        if not n or not np.isfinite(gaps[w]):
            continue
        model.cells += 1
        expr, const = {}, 0.0
        for x, a, c in zip(xs[sel], own_y[sel], nb_y[sel]):
            q = int(round(x))
            if np.isfinite(a):
                const += a
            else:
                expr[f"pg:q[{q}]"] = expr.get(f"pg:q[{q}]", 0) + 1
            if np.isfinite(c):
                const -= c
            else:
                v = model.var(f"pg:nb[{q}]", truth=nb_truth.get(q))
                expr[v] = expr.get(v, 0) - 1 / k
        half = 0.05 + 1e-9
        model.add(expr, n * (gaps[w] - half) - const, n * (gaps[w] + half) - const, f"mean gap {w} the start")


# ---- the staggered difference-in-differences and event study across councils (identity 15) ---------------

def did_figures(effect) -> np.ndarray:
    """The figures results.json publishes exactly of the two-stage fit: the ATT, the two-way fixed effects
    estimate and every event-study estimate (effects and pre-trend leads), in event-time order."""
    es = effect.event_study.sort_values("event_time")
    return np.array([effect.att["estimate"], effect.twfe["estimate"], *es["estimate"].to_numpy(float)])


def read_did(model: Model, fit, panel, outcome: str, hidden, published: np.ndarray, truth: dict) -> None:
    """Identity 15: the two-stage estimates (the first stage's council and period effects fitted on the
    untreated council-periods, the second stage's averages of what is left over the treated ones) and the
    two-way fixed effects estimate are linear in the outcome: ``published = W y``. The adversary knows the
    design (every council's adoption quarter is published) and, stronger than a reader, every council-period
    not hidden; it computes W's columns for the hidden ones by refitting (``fit(panel) -> figures``) with
    each hidden value set to 1 and the rest to 0, and adds ``W_hidden y_hidden = published - W_shown y_shown``
    as linear equations (published read exactly, as in results.json) in ``pg:did[council|quarter]``.
    Targets: each hidden council-period whose truth is from 1 to threshold - 1. Where the published figures
    do not depend on a hidden value at all (its column is zero: fitted on the shown periods only), the
    adversary learns nothing of it, and says so by adding no row."""
    thr = model_threshold(truth)
    keys = [(str(panel.at[i, "la_code"]), int(panel.at[i, "period"])) for i in panel.index[hidden]]
    base = panel.copy()
    base.loc[hidden, outcome] = 0.0
    c = fit(base)
    cols = []
    for i in panel.index[hidden]:
        one = base.copy()
        one.at[i, outcome] = 1.0
        cols.append(fit(one) - c)
    W = np.column_stack(cols) if cols else np.zeros((len(c), 0))
    names = []
    for (la, q), i in zip(keys, panel.index[hidden]):
        t = int(panel.at[i, outcome])
        v = model.var(f"pg:did[{la}|{q}]", truth=t)
        names.append(v)
        if 1 <= t < thr:
            model.targets.append(Target(v, {v: 1}, t, f"council {la}'s referrals in {q // 4}Q{q % 4 + 1} (DiD)"))
    model.cells += len(published)
    rhs = published - c
    for k in range(len(rhs)):
        if np.abs(W[k]).max(initial=0) < 1e-12:
            continue  # this figure says nothing of any hidden value
        tol = 1e-7 * (1 + np.abs(W[k]).sum() * 100)
        model.add({v: float(W[k, j]) for j, v in enumerate(names) if W[k, j] != 0}, rhs[k] - tol, rhs[k] + tol,
                  f"difference-in-differences figure {k}")
    for (la, year), idx in truth.get("years", {}).items():  # a year's referrals published (DfE's measure)
        expr = {f"pg:did[{la}|{q}]": 1 for q in idx["hidden"]}
        if expr:
            model.add(expr, idx["hidden_sum"], idx["hidden_sum"], f"council {la}'s quarters of {year} add up")
