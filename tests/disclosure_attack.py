"""An adversary for the published site: recover suppressed counts by exact reasoning.

It reads only what a reader sees for one council (the HTML of its re-referral report, its
intervention report and the national summary, the alt text of every chart and the text
drawn on the charts), writes down every identity the pages imply (docs/publishing.md,
"What the adversary knows") as integer linear constraints, and asks an integer solver
(scipy.optimize.milp) for the smallest and largest value each hidden count can take.

A hidden count is protected when at least ``threshold`` whole numbers remain possible.
The true values are used only to check the adversary's own identities (the truth must be
feasible, else the identity is wrong) and to say which hidden counts are small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
from bs4 import BeautifulSoup
from scipy.optimize import Bounds, LinearConstraint, milp

BIG = 10**6
NUM = r"[\d,]+"


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass
class Target:
    name: str
    expr: dict  # variable -> coefficient
    truth: float | None
    why: str


@dataclass
class Model:
    """Integer variables, linear constraints over them, and the hidden counts to attack."""

    lower: dict = field(default_factory=dict)
    upper: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)  # (expr, lo, hi, why)
    targets: list = field(default_factory=list)
    cells: int = 0  # published figures the adversary read and used
    #: denominators that enter a constraint non-linearly: (num vars, den vars, lo, hi, why)
    ratios: list = field(default_factory=list)
    #: targets solved by enumeration outside the linear model: (name, why, truth, the values still possible)
    finite: list = field(default_factory=list)
    #: identities checked by enumeration that the truth broke (each a wrong assumption of the adversary)
    broken: list = field(default_factory=list)

    def var(self, name: str, lo: float = 0, hi: float = BIG, truth: float | None = None) -> str:
        if name not in self.lower:
            self.lower[name], self.upper[name] = lo, hi
        else:
            self.lower[name], self.upper[name] = max(self.lower[name], lo), min(self.upper[name], hi)
        if truth is not None:
            self.truth[name] = truth
        return name

    def fix(self, name: str, value: float) -> None:
        self.var(name, value, value)

    def add(self, expr: dict, lo: float = -np.inf, hi: float = np.inf, why: str = "") -> None:
        for v in expr:
            self.var(v)
        self.rows.append((dict(expr), lo, hi, why))

    def published(self, name: str, shown: str, truth: float | None, why: str, zeros_shown: bool = True) -> None:
        """A count shown as a number or as "c" (then it is at least 1 and a target)."""
        self.cells += 1
        self.var(name, truth=truth)
        shown = shown.strip()
        if shown == "c":
            self.var(name, lo=1 if zeros_shown else 0)
            self.targets.append(Target(name, {name: 1}, truth, why))
        elif re.fullmatch(NUM, shown):
            self.fix(name, _int(shown))

    # ---- solving ----------------------------------------------------------------------------
    def _arrays(self, extra_fixed: dict | None = None):
        names = sorted(self.lower)
        index = {n: i for i, n in enumerate(names)}
        lo = np.array([self.lower[n] for n in names], float)
        hi = np.array([self.upper[n] for n in names], float)
        for n, v in (extra_fixed or {}).items():
            lo[index[n]] = hi[index[n]] = v
        a = np.zeros((len(self.rows), len(names)))
        rl, rh = np.zeros(len(self.rows)), np.zeros(len(self.rows))
        for i, (expr, low, high, _w) in enumerate(self.rows):
            for v, c in expr.items():
                a[i, index[v]] += c
            rl[i], rh[i] = low, high
        return names, index, lo, hi, a, rl, rh

    def check_truth(self) -> list[str]:
        """Identities the truth breaks (each would be a wrong assumption of the adversary)."""
        bad = []
        for expr, lo, hi, why in self.rows:
            if all(v in self.truth for v in expr):
                val = sum(c * self.truth[v] for v, c in expr.items())
                if not (lo - 1e-6 <= val <= hi + 1e-6):
                    bad.append(f"{why}: {val} not in [{lo}, {hi}]")
        hidden = {n for t in self.targets for n in t.expr}
        for v, t in self.truth.items():
            if v in hidden and t == 0:
                continue  # a zero hidden as a complement: "c is at least 1" is dropped in attack()
            if not (self.lower[v] - 1e-6 <= t <= self.upper[v] + 1e-6):
                bad.append(f"{v}: truth {t} outside [{self.lower[v]}, {self.upper[v]}]")
        return bad + list(self.broken)

    def _ratio_cases(self) -> list[dict]:
        """Values of the non-linear denominators to try (every combination in their ranges, when few)."""
        dens = sorted({d for r in self.ratios for d in r[1]})
        if not dens:
            return [{}]
        ranges = {}
        for d in dens:
            lo, hi = self._bounds_of({d: 1}, {})
            if lo is None or hi - lo > 60:
                return [{}]  # too many: the adversary gives these constraints up (weaker, never wrong)
            ranges[d] = range(int(lo), int(hi) + 1)
        cases = [{}]
        for d in dens:
            cases = [{**c, d: v} for c in cases for v in ranges[d]]
            if len(cases) > 4000:
                return [{}]
        return cases

    def _bounds_of(self, expr: dict, fixed: dict, ratio_rows: list | None = None):
        names, index, lo, hi, a, rl, rh = self._arrays(fixed)
        rows_a, rows_l, rows_h = [a], [rl], [rh]
        for num, den, low, high in ratio_rows or []:
            # sum(num_i / den_i * x_i) in [low, high] with every den fixed: a linear row
            row = np.zeros(len(names))
            for (v, coef), d in zip(num, den):
                row[index[v]] += coef / fixed[d]
            rows_a.append(row[None, :])
            rows_l.append(np.array([low]))
            rows_h.append(np.array([high]))
        A, L, H = np.vstack(rows_a), np.concatenate(rows_l), np.concatenate(rows_h)
        c = np.zeros(len(names))
        for v, k in expr.items():
            c[index[v]] += k
        cons = [LinearConstraint(A, L, H)] if len(A) else []
        out = []
        for sign in (1, -1):
            res = milp(sign * c, constraints=cons, integrality=np.ones(len(names)), bounds=Bounds(lo, hi))
            if res.status != 0:
                return None, None
            out.append(sign * res.fun)
        return round(out[0]), round(out[1])

    def attack(self) -> list[dict]:
        """The feasible range of every target. Where "a c is at least 1" leaves no solution (a zero was
        hidden as a complement), the adversary drops that assumption, as a reader would."""
        # a zero hidden as a complement is not "at least 1": the adversary's knowledge must hold on the truth
        # (check_truth skips these cells), so that assumption is dropped where it is false
        for t in self.targets:
            for name in t.expr:
                if self.truth.get(name) == 0 and self.lower.get(name) == 1:
                    self.lower[name] = 0
        if self._bounds_of({}, {})[0] is None:
            for t in self.targets:
                for name in t.expr:
                    self.lower[name] = 0
        cases = self._ratio_cases()
        ratio_rows = self.ratios
        found = []
        for t in self.targets:
            lo, hi = None, None
            for case in cases:
                if any(val == 0 for val in case.values()):
                    continue  # no simple comparison without both groups
                use = ratio_rows if case else []
                a, b = self._bounds_of(t.expr, case, use)
                if a is None:
                    continue
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
            found.append({"target": t.name, "why": t.why, "truth": t.truth, "low": lo, "high": hi,
                          "values": None if lo is None else hi - lo + 1})
        for name, why, truth, values in self.finite:
            found.append({"target": name, "why": why, "truth": truth, "low": min(values, default=None),
                          "high": max(values, default=None), "values": len(values) if values else None})
        return found


# ---- reading pages -------------------------------------------------------------------------------

def _tables(soup) -> list[tuple[str, list[str], dict]]:
    """(corner, column headings, {row label: [cells]}) of every table on a page."""
    out = []
    for t in soup.find_all("table"):
        head = t.find("thead")
        heads = [th.get_text(" ", strip=True) for th in (head.find_all("tr")[0].find_all("th") if head else [])]
        rows = {}
        for tr in (t.find("tbody") or t).find_all("tr"):
            cells = tr.find_all(["th", "td"])
            if not cells or (head and tr.find_parent("thead")):
                continue
            texts = [c.get_text(" ", strip=True).replace("\u00a0", " ") for c in cells]
            rows[texts[0]] = texts[1:]
        out.append((heads[0] if heads else "", heads[1:], rows))
    return out


def _text(soup) -> str:
    for t in soup.find_all("table"):
        t.decompose()
    text = soup.get_text(" ")
    text = text.replace("\u00a0", " ")
    return re.sub(r"\s+", " ", text)


def _alts(soup) -> list[str]:
    return [i.get("alt", "") for i in soup.find_all("img")]


_COUNT_ROWS = {
    "Referrals in the extract": "R", "Referrals dated after the extract (left out)": "A",
    "Closed after the extract date (treated as open)": "Lt", "No further action, closed on the referral date": "N",
    "Referrals joined to an overlapping one": "M", "Cases open at the extract (no episode)": "O",
    "Episodes (closed periods of contact)": "E", "Closed because the child died (not at risk)": "D",
    "Closed on transfer to another council (not at risk)": "T", "Closed at 18 or over (not at risk)": "Ad",
    "Closed on the extract date (no follow-up)": "X", "Referrals of a child not in the children table": "U",
    "Episodes followed up": "F",
}
_COUNT_KEYS = {"R": "referrals", "A": "referrals_after_extract", "Lt": "closures_after_extract",
               "N": "nfa_closed_at_referral", "M": "merged_overlapping", "O": "open_cases", "E": "episodes",
               "D": "not_at_risk_died", "T": "not_at_risk_transferred", "Ad": "not_at_risk_adult",
               "X": "closed_on_extract_date", "U": "unknown_child"}


def _share(cell: str) -> float | None:
    m = re.match(r"\s*(\d+(?:\.\d+)?)%", cell)
    return float(m.group(1)) / 100 if m else None


def _decimals(cell: str) -> int:
    m = re.match(r"\s*\d+(?:\.(\d+))?%", cell)
    return len(m.group(1)) if m and m.group(1) else 0


def read_rereferral(model: Model, html: str, truth: dict, chart_texts: list[str]) -> None:
    """The re-referral report: counts table, intro and caveat sentences, survival, incidence, RMST, DfE."""
    soup = BeautifulSoup(html, "html.parser")
    tables = _tables(soup)
    text = _text(BeautifulSoup(html, "html.parser"))
    counts = truth.get("counts", {})
    P = "rr:"  # noqa: N806
    v = lambda k: P + k  # noqa: E731
    for corner, heads, rows in tables:
        if corner == "What happened":
            for label, cells in rows.items():
                key = _COUNT_ROWS.get(label)
                if key:
                    t = truth.get("followed_up") if key == "F" else counts.get(_COUNT_KEYS.get(key))
                    model.published(v(key), cells[0], t, f"counts table: {label}")
    # the identities of the counts table (docs/publishing.md)
    model.add({v("R"): 1, v("A"): -1, v("M"): -1, v("O"): -1, v("E"): -1}, 0, 0,
              "referrals - after extract = merged + open + episodes")
    model.add({v("E"): 1, v("D"): -1, v("T"): -1, v("Ad"): -1, v("X"): -1, v("F"): -1}, 0, 0,
              "episodes = died + transferred + 18 + closed on extract date + followed up")
    model.add({v("U"): 1, v("E"): -1}, hi=0, why="unknown child <= episodes")
    m = re.search(rf"({NUM}) closed cases followed up", text)
    if m:
        model.cells += 1
        model.fix(v("F"), _int(m.group(1)))
    m = re.search(rf"({NUM}) referrals? dated after the extract date (?:was|were) left out", text)
    if m:
        model.cells += 1
        model.fix(v("A"), _int(m.group(1)))

    groups = truth.get("groups", {})
    # survival table: episodes by group add up to the episodes followed up
    sizes = {}
    for corner, heads, rows in tables:
        if "Episodes" in heads and any(h.startswith("After ") for h in heads):
            for label, cells in rows.items():
                g = groups.get(label, {})
                n = model.var(v(f"n[{label}]"), truth=g.get("n"))
                sizes[label] = n
                model.published(n, cells[heads.index("Episodes")], g.get("n"), f"episodes in group {label}")
                prev = None
                for h_col, cell in zip(heads, cells):
                    hm = re.match(r"After (.+)", h_col)
                    if hm:
                        d = _events(model, v, label, hm.group(1), g)
                        s = _share(cell)
                        if s is not None:
                            model.cells += 1
                            _share_bounds(model, d, n, 1 - s, 0.5 * 10 ** -(2 + _decimals(cell)), f"KM {label} {h_col}")
                        if prev is not None:
                            model.add({d: 1, prev: -1}, lo=0, why="events only grow with time")
                        prev = d
                    fm = re.match(r"Still followed at (.+)", h_col)
                    if fm and re.fullmatch(NUM, cell):
                        model.cells += 1
                        d = _events(model, v, label, fm.group(1), g)
                        # still followed <= episodes - re-referred by then
                        model.add({n: 1, d: -1}, lo=_int(cell), why=f"at risk {label}")
    if sizes:
        model.add({**{n: 1 for n in sizes.values()}, v("F"): -1}, 0, 0, "groups add up to the episodes followed up")
    # the chart's numbers at risk at time 0 are the group sizes
    for line in chart_texts:
        mm = re.match(r"at risk \| (.+) \| 0 \| (.+)", line)
        if not mm or not re.fullmatch(NUM, mm.group(2)):
            continue
        short = mm.group(1).rstrip("\u2026. ")
        hit = [lab for lab in sizes if lab == mm.group(1) or lab.startswith(short)]
        if len(hit) == 1:
            model.cells += 1
            model.fix(sizes[hit[0]], _int(mm.group(2)))
    # later numbers at risk: everyone re-referred by day h <= x has left the risk set by x
    for line in chart_texts:
        mm = re.match(r"at risk \| (.+) \| ([\d.]+) \| (.+)", line)
        if not mm or float(mm.group(2)) == 0 or not re.fullmatch(NUM, mm.group(3)):
            continue
        short = mm.group(1).rstrip("\u2026. ")
        hit = [lab for lab in sizes if lab == mm.group(1) or lab.startswith(short)]
        if len(hit) != 1:
            continue
        model.cells += 1
        label, x, a = hit[0], float(mm.group(2)), _int(mm.group(3))
        for words, h in _HORIZON_DAYS.items():
            name = v(f"d[{label}|{words}]")
            if h <= x and name in model.lower:
                model.add({sizes[label]: 1, name: -1}, lo=a, why=f"chart: {a} still followed at day {x:g} in {label}")
    # the curves as drawn: the height at each horizon where the curve is drawn there is the share re-referred
    read_curves(model, v, sizes, groups, chart_texts)
    # cumulative incidence: the same re-referrals; the competing share gives the competing events
    for corner, heads, rows in tables:
        if any(h.startswith("Within ") for h in heads) and any(h.startswith("Turned 18") for h in heads):
            for label, cells in rows.items():
                if label not in sizes:
                    continue
                g = groups.get(label, {})
                for h_col, cell in zip(heads, cells):
                    s = _share(cell)
                    hm = re.match(r"Within (.+)", h_col)
                    if hm and s is not None:
                        model.cells += 1
                        _share_bounds(model, _events(model, v, label, hm.group(1), g), sizes[label], s,
                                      0.5 * 10 ** -(2 + _decimals(cell)), f"CIF {label} {h_col}")
                    cm = re.match(r"Turned 18, died or moved away (.+)", h_col)
                    if cm and s is not None:
                        model.cells += 1
                        k = model.var(v(f"k[{label}]"), truth=g.get("competing"))
                        _share_bounds(model, k, sizes[label], s, 0.5 * 10 ** -(2 + _decimals(cell)),
                                      f"competing {label}")
                        if g.get("competing") is not None and 1 <= g["competing"] < model_threshold(truth):
                            model.targets.append(Target(k, {k: 1}, g["competing"], f"competing events in {label}"))
    # RMST: the horizon itself (with a zero-width interval) means nobody in the group came back
    for corner, heads, rows in tables:
        rm = [h for h in heads if h.startswith("Average days out of contact")]
        if rm and "95% interval" in heads:
            for label, cells in rows.items():
                if label not in sizes:
                    continue
                model.cells += 1
                val, ci = cells[heads.index(rm[0])], cells[heads.index("95% interval")]
                h = truth.get("rmst_horizon")
                d = _events(model, v, label, _when_words(h), groups.get(label, {})) if h else None
                if d and re.fullmatch(r"\d+", val):
                    if int(val) <= h - 1:
                        model.add({d: 1}, lo=1, why=f"RMST below the horizon in {label}")
                    elif ci == f"{h} to {h}":
                        model.add({d: 1}, 0, 0, why=f"RMST at the horizon in {label}")
    # small hidden counts behind shares are targets too
    for label in sizes:
        g = groups.get(label, {})
        for hw, t in g.get("events", {}).items():
            name = v(f"d[{label}|{hw}]")
            if name in model.lower and 1 <= t < model_threshold(truth):
                model.targets.append(Target(name, {name: 1}, t, f"re-referred by {hw} in {label}"))
    read_dfe(model, tables, text, truth)


_HORIZON_DAYS = {"3 months": 91, "6 months": 182, "1 year": 365}


def curve_texts(fig) -> list[str]:
    """Every curve a figure draws, as exactly as a reader could digitise it (every point), one line each."""
    out = []
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label()
            if label.startswith("_") or len(line.get_xdata()) < 2:
                continue
            points = ";".join(f"{x:g}:{y:.9g}" for x, y in zip(line.get_xdata(), line.get_ydata()))
            out.append(f"curve | {ax.get_ylabel()} | {label} | {points}")
    return out


def read_curves(model: Model, v, sizes: dict, groups: dict, chart_texts: list[str]) -> None:
    """Each curve a chart draws, read exactly (the strongest digitiser): where it is drawn at a horizon, its
    height there is 1 - KM (or the cumulative incidence) of re-referral, which bounds the count re-referred
    by then as a share in a table does (docs/publishing.md, identity 4)."""
    for line in chart_texts:
        mm = re.match(r"curve \| (.*?) \| (.+) \| (.+)", line)
        if not mm:
            continue
        ylabel, label, data = mm.groups()
        short = label.rstrip("\u2026. ")
        hit = [lab for lab in sizes if lab == label or lab.startswith(short)]
        if len(hit) != 1:
            continue
        pts = [tuple(float(z) for z in p.split(":")) for p in data.split(";")]
        xs = np.array([p[0] for p in pts])
        ys = np.array([p[1] for p in pts])
        for words, h in _HORIZON_DAYS.items():
            name = v(f"d[{hit[0]}|{words}]")
            if name not in model.lower or h > xs.max():
                continue
            y = ys[np.searchsorted(xs, h, side="right") - 1]
            if not np.isfinite(y):
                continue  # not drawn there: nothing to read
            model.cells += 1
            share = 1 - y if ylabel.startswith("Not yet") else y
            _share_bounds(model, name, sizes[hit[0]], max(share, 0.0), 1e-6, f"curve {hit[0]} at {words}")


def model_threshold(truth: dict) -> int:
    return int(truth.get("threshold", 5))


def _when_words(h: int) -> str:
    return {91: "3 months", 182: "6 months", 365: "1 year"}.get(int(h), f"{int(h)} days")


def _events(model: Model, v, label: str, when: str, g: dict) -> str:
    return model.var(v(f"d[{label}|{when}]"), truth=g.get("events", {}).get(when))


def _share_bounds(model: Model, d: str, n: str, share: float, half: float, why: str) -> None:
    """A share re-referred s (rounded) of n: the count d satisfies d <= (s + half) n (KM and
    Aalen-Johansen estimates are never below the plain share d/n), and d >= 1 when s > 0."""
    model.add({d: 1, n: -(share + half)}, hi=0, why=why)
    if share - half > 0:
        model.add({d: 1}, lo=1, why=why + " (not zero)")
    model.add({d: 1, n: -1}, hi=0, why=why + " (at most all)")


def read_dfe(model: Model, tables, text: str, truth: dict) -> None:
    """DfE's measure: the table, the headline sentence (and the national page, read separately)."""
    dfe = truth.get("dfe", {})
    for corner, heads, rows in tables:
        if corner == "Year to 31 March" and "Referrals" in heads:
            for year, cells in rows.items():
                t = dfe.get(int(year), {})
                ref, rr = f"dfe:ref[{year}]", f"dfe:rr[{year}]"
                model.published(ref, cells[heads.index("Referrals")], t.get("referrals"), f"DfE referrals {year}")
                model.published(rr, cells[heads.index("Re-referrals within 12 months")], t.get("rereferrals"),
                                f"DfE re-referrals {year}")
                model.add({rr: 1, ref: -1}, hi=0, why="re-referrals <= referrals")
                _rate(model, ref, rr, cells[heads.index("Rate")], f"DfE rate {year}")
                _complement_target(model, ref, rr, t, truth, year)
    for m in re.finditer(r"In the year to 31 March (\d{4}), (\d+(?:\.\d+)?)% of the council's referrals", text):
        year = m.group(1)
        _rate(model, f"dfe:ref[{year}]", f"dfe:rr[{year}]", m.group(2) + "%", f"headline DfE rate {year}")


def _complement_target(model, ref, rr, t, truth, year):
    if t.get("referrals") is not None and t.get("rereferrals") is not None:
        diff = t["referrals"] - t["rereferrals"]
        if 1 <= diff < model_threshold(truth):
            model.targets.append(Target(f"dfe:not-rr[{year}]", {ref: 1, rr: -1}, diff,
                                        f"referrals in {year} that were not re-referrals"))


def _rate(model: Model, ref: str, rr: str, cell: str, why: str) -> None:
    s = _share(cell)
    if s is None:
        return
    model.cells += 1
    half = 0.5 * 10 ** -(2 + _decimals(cell))
    model.add({rr: 1, ref: -(s + half)}, hi=0, why=why)
    model.add({rr: 1, ref: -(s - half)}, lo=0, why=why)


def read_national(model: Model, html: str, la_name: str) -> None:
    """The national summary's row for the council: its computed rate and referrals for the year."""
    soup = BeautifulSoup(html, "html.parser")
    for corner, heads, rows in _tables(soup):
        if corner == "Council" and "Computed rate" in heads and la_name in rows:
            cells = rows[la_name]
            year = cells[heads.index("Year")]
            ref, rr = f"dfe:ref[{year}]", f"dfe:rr[{year}]"
            shown = cells[heads.index("Referrals (computed)")]
            model.cells += 1
            if re.fullmatch(NUM, shown):
                model.fix(ref, _int(shown))
            model.var(rr)
            model.add({rr: 1, ref: -1}, hi=0, why="re-referrals <= referrals")
            _rate(model, ref, rr, cells[heads.index("Computed rate")], f"national computed rate {year}")


def read_intervention(model: Model, html: str, truth: dict, chart_texts: list[str], prefix: str = "iv:") -> None:
    """The intervention report: the counts table (with its total row) and the simple comparison. ``prefix``
    names its unknowns (a second evaluation of the same children has its own, identity 25)."""
    soup = BeautifulSoup(html, "html.parser")
    tables = _tables(soup)
    text = _text(BeautifulSoup(html, "html.parser"))
    c = truth.get("counts", {})
    P = prefix  # noqa: N806
    cols = {"Closed cases analysed": "analysed", "Followed for the whole": "binary", "Re-referred within": "rereferred"}
    found = False
    for corner, heads, rows in tables:
        if corner == "Group" and any(h.startswith("Closed cases analysed") for h in heads):
            found = True
            for label, arm in (("Received the intervention", "treated"), ("Did not", "control"), ("Total", "total")):
                cells = rows.get(label)
                if cells is None:
                    continue
                for h, cell in zip(heads, cells):
                    key = next(k for p, k in cols.items() if h.startswith(p))
                    t = (c.get(f"{key}_treated", 0) + c.get(f"{key}_control", 0)) if arm == "total" else c.get(f"{key}_{arm}")
                    model.published(P + f"{key}_{arm}", cell, t, f"intervention {label}: {h}")
    if not found:
        return
    for key in cols.values():
        model.add({P + f"{key}_treated": 1, P + f"{key}_control": 1, P + f"{key}_total": -1}, 0, 0, f"{key} total")
    for arm in ("treated", "control"):
        model.add({P + f"binary_{arm}": 1, P + f"analysed_{arm}": -1}, hi=0, why="followed <= analysed")
        model.add({P + f"rereferred_{arm}": 1, P + f"binary_{arm}": -1}, hi=0, why="re-referred <= followed")
    m = re.search(r"among the ([\d,]+) closed cases where children who did and did not", text)
    if m:
        model.cells += 1
        model.fix(P + "analysed_total", _int(m.group(1)))
    # every closed case at risk: the same episodes the re-referral report follows up (cross-evaluation)
    model.var(P + "episodes", truth=c.get("episodes"))
    model.add({P + "episodes": 1, "rr:F": -1}, 0, 0, "intervention's closed cases at risk = re-referral's followed up")
    model.add({P + "analysed_total": 1, P + "episodes": -1}, hi=0, why="analysed <= closed cases at risk")
    m = re.search(r"among all ([\d,]+) closed cases at risk", text)
    if m:
        model.cells += 1
        model.fix(P + "analysed_total", _int(m.group(1)))
        model.fix(P + "episodes", _int(m.group(1)))
    m = re.search(r"\(\d+% of ([\d,]+) were set aside", text)
    if m:
        model.cells += 1
        model.fix(P + "episodes", _int(m.group(1)))
    # the simple comparison: r_t / b_t - r_c / b_c, rounded to 0.1 points
    m = re.search(r"Comparing the two groups as they are gives ([-+]\d+(?:\.\d+)?) points", text)
    for corner, heads, rows in tables:
        if corner == "Comparison":
            for label, cells in rows.items():
                if label.startswith("Simple comparison"):
                    mm = re.match(r"([-+]\d+(?:\.\d+)?) points", cells[0])
                    m = m or mm
    if m:
        model.cells += 1
        value = float(m.group(1)) / 100
        model.ratios.append(([(P + "rereferred_treated", 1), (P + "rereferred_control", -1)],
                             [P + "binary_treated", P + "binary_control"], value - 0.0005, value + 0.0005))


def targets_small_enough(results: Iterable[dict], threshold: int) -> list[dict]:
    """Targets the adversary narrowed to fewer than ``threshold`` possible values."""
    return [r for r in results if r["values"] is not None and r["values"] < threshold]


# ---- the practice report -------------------------------------------------------------------------

_BY_ORDER = ("ethnicity", "sex", "disability", "age_band")
_OUTCOME_COLUMNS = {"Assessed": "assessed", "On a child in need or protection plan": "plan",
                    "On a child protection plan": "cp_plan", "Re-referred within 12 months": "rereferral"}


def _linear_share(model: Model, num: str, den: str, share: float, half: float, why: str) -> None:
    """A plain share num / den shown rounded: (s - half) den <= num <= (s + half) den (linear in both)."""
    model.add({num: 1, den: -(share + half)}, hi=0, why=why)
    model.add({num: 1, den: -(share - half)}, lo=0, why=why)


def read_practice(model: Model, html: str, truth: dict) -> None:
    """The practice report: groupings of need (assessments by grouping and their shares), children referred by
    ethnic group (with the total row), and what happens after referral by ethnicity, sex, disability and age
    (referrals, and per outcome a share with its relative rate index against the council's share).

    Identities (docs/publishing.md, identity 7): the groupings add up to the assessments, each share pins its
    count against that total; children referred add up to the total row, and a group's children referred in
    the period are at most its referrals; in each grouping of referrals the groups add up to the same
    referrals (one total across the four tables) and, per outcome, to the same number with it; with <= referrals;
    a share s (0.5 points) bounds with / referrals; a shown share over its relative rate index r (0.005) bounds
    the council's share with / referrals; the referrals are the re-referral report's "Referrals in the extract"."""
    soup = BeautifulSoup(html, "html.parser")
    tables = _tables(soup)
    thr = model_threshold(truth)
    small = lambda t: t is not None and 1 <= t < thr  # noqa: E731
    P = "pr:"  # noqa: N806
    classes = truth.get("classes", {})
    after = truth.get("after", {})
    pop = truth.get("population", {})
    by_seen = 0
    for corner, heads, rows in tables:
        if heads[:2] == ["Assessments", "Share of assessments"]:
            total = model.var(P + "A", truth=truth.get("assessments"))
            parts = []
            for label, cells in rows.items():
                a = P + f"a[{label}]"
                model.published(a, cells[0], classes.get(label), f"assessments in grouping {label}")
                parts.append(a)
                s = _share(cells[1])
                if s is not None:
                    model.cells += 1
                    _linear_share(model, a, total, s, 0.5 * 10 ** -(2 + _decimals(cells[1])), f"share of {label}")
            model.add({**{a: 1 for a in parts}, total: -1}, 0, 0, "groupings add up to the assessments")
        elif heads and heads[0] == "Children referred":
            parts = []
            for label, cells in rows.items():
                name = P + ("C" if label == "Total" else f"c[{label}]")
                t = pop.get("total") if label == "Total" else pop.get(label)
                model.published(name, cells[0], t, f"children referred: {label}")
                if label != "Total":
                    parts.append(name)
                    n = model.var(P + f"n[ethnicity|{label}]", truth=after.get(("ethnicity", label), {}).get("n"))
                    model.add({name: 1, n: -1}, hi=0, why=f"children referred <= referrals ({label})")
            model.add({**{c: 1 for c in parts}, P + "C": -1}, 0, 0, "children referred add up to the total")
        elif heads and heads[0] == "Referrals" and "Assessed" in heads:
            by = _BY_ORDER[min(by_seen, len(_BY_ORDER) - 1)]
            by_seen += 1
            ns = []
            events = {o: [] for o in _OUTCOME_COLUMNS.values()}
            for label, cells in rows.items():
                g = after.get((by, label), {})
                n = P + f"n[{by}|{label}]"
                model.published(n, cells[0], g.get("n"), f"referrals, {by} {label}")
                ns.append(n)
                for h, cell in zip(heads[1:], cells[1:]):
                    o = _OUTCOME_COLUMNS.get(h)
                    if o is None:
                        continue
                    te = g.get("e", {}).get(o)
                    e = model.var(P + f"e[{o}|{by}|{label}]", truth=te)
                    events[o].append(e)
                    model.add({e: 1, n: -1}, hi=0, why=f"{o} <= referrals ({by} {label})")
                    tn = None if te is None or g.get("n") is None else g["n"] - te
                    m = re.match(r"\s*(\d+)%(?:\s*\(([\d.]+) \()?", cell)
                    model.cells += 1
                    if m:
                        s = int(m.group(1)) / 100
                        _linear_share(model, e, n, s, 0.005, f"share {o} {by} {label}")
                        if small(tn):  # the rest of a shown share: the suppression should have hidden it
                            model.targets.append(Target(f"{e}:rest", {n: 1, e: -1}, tn, f"referrals not {o}, {by} {label}"))
                        nn = cells[0].replace(",", "")
                        if m.group(2) and nn.isdigit() and int(nn) > 0:
                            nv, r = int(nn), float(m.group(2))
                            q = [k for k in range(nv + 1) if abs(k / nv - s) <= 0.005 + 1e-12]
                            if len(q) == 1 and q[0] > 0 and r > 0.005:
                                q0 = q[0] / nv
                                model.add({P + f"E[{o}]": 1, P + "N": -q0 / (r - 0.005)}, hi=0, why=f"rri {o} {by} {label}")
                                model.add({P + f"E[{o}]": 1, P + "N": -q0 / (r + 0.005)}, lo=0, why=f"rri {o} {by} {label}")
                    elif cell.strip() == C_SYMBOL:
                        if small(te):
                            model.targets.append(Target(e, {e: 1}, te, f"referrals {o}, {by} {label}"))
                        if small(tn):
                            model.targets.append(Target(f"{e}:rest", {n: 1, e: -1}, tn, f"referrals not {o}, {by} {label}"))
            model.var(P + "N", truth=truth.get("referrals"))
            model.add({**{n: 1 for n in ns}, P + "N": -1}, 0, 0, f"{by}: groups add up to the referrals")
            for o, es in events.items():
                if es:
                    model.var(P + f"E[{o}]", truth=truth.get("totals", {}).get(o))
                    model.add({**{e: 1 for e in es}, P + f"E[{o}]": -1}, 0, 0, f"{by}: groups add up to {o}")
    if P + "N" in model.lower and "rr:R" in model.lower:
        model.add({P + "N": 1, "rr:R": -1}, 0, 0, "practice referrals = re-referral report's referrals in the extract")


C_SYMBOL = "c"


def read_intervention_curves(model: Model, chart_texts: list[str], truth: dict) -> None:
    """The intervention report's adjusted curves, read point by point (docs/publishing.md, identity 9).

    Whatever the weights, each week a curve drops is a week at least one child of that arm came back, so the
    number re-referred by the horizon (among the cases analysed) is at least the number of rises drawn, at
    least the counts table's "re-referred within" (those also followed for the whole period) and at most the
    cases analysed. (With ATT the treated arm's weights are 1, yet "its curve
    is a plain Kaplan-Meier, d <= s n" is broken by the truth at seeds 0 and 2, so the adversary does not
    assume it: see docs/publishing.md.)"""
    P = "iv:"  # noqa: N806
    if P + "analysed_treated" not in model.lower:
        return
    for line in chart_texts:
        mm = re.match(r"curve \| Share re-referred \(weighted\) \| (With the intervention|Without) \| (.+)", line)
        if not mm:
            continue
        arm = "treated" if mm.group(1) == "With the intervention" else "control"
        pts = [tuple(float(z) for z in p.split(":")) for p in mm.group(2).split(";")]
        ys = [y for _x, y in pts if np.isfinite(y)]
        if not ys:
            continue
        # the arm's re-referrals by the horizon among the cases analysed: at least the rises drawn, at least the
        # counts table's re-referred (those followed for the whole period), at most the cases analysed
        d = model.var(P + f"events_{arm}", truth=truth.get(f"events_{arm}"))
        model.add({d: 1, P + f"rereferred_{arm}": -1}, lo=0, why=f"{arm}: re-referred by the horizon >= table's")
        model.add({d: 1, P + f"analysed_{arm}": -1}, hi=0, why=f"{arm}: re-referred by the horizon <= analysed")
        drops = sum(1 for a, b in zip(ys, ys[1:]) if b > a + 1e-12) + (1 if ys[0] > 1e-12 else 0)
        model.cells += len(ys)
        if drops:
            model.add({d: 1}, lo=drops, why=f"{drops} weeks with a drop on the {arm} curve")
        # with ATT the treated arm's weights are 1: its curve is the plain Kaplan-Meier of the treated cases
        # analysed, never below the plain share, so its height s at the horizon bounds d <= s n (identity 11)
        last_x, last_y = pts[-1]
        if arm == "treated" and truth.get("estimand") == "ATT" and np.isfinite(last_y):
            model.cells += 1
            model.add({d: 1, P + "analysed_treated": -(last_y + 1e-9)}, hi=0,
                      why=f"ATT: the treated curve at day {last_x:g} is a plain Kaplan-Meier")


# ---- the intervention report's balance table -----------------------------------------------------

def point_texts(fig) -> list[str]:
    """Every dot a figure draws (scatter), as exactly as a reader could digitise it, by the tick label of its row."""
    out = []
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        for coll in ax.collections:
            label = coll.get_label()
            offsets = getattr(coll, "get_offsets", lambda: [])()
            if label.startswith("_") or len(offsets) == 0:
                continue
            pts = []
            for x, y in np.asarray(offsets, float):
                k = int(round(y))
                if 0 <= k < len(labels) and abs(y - k) < 1e-9:
                    pts.append(f"{labels[k]}={x:.17g}")
            out.append(f"points | {ax.get_xlabel()} | {label} | " + ";".join(pts))
    return out


def _smd_grid(n1: int, n0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (with in treated, with in control) and its standardised difference, computed as
    stats.propensity.balance_table does (pooled unweighted SD with ddof=1; 0 where the SD is 0)."""
    k1, k0 = np.meshgrid(np.arange(n1 + 1, dtype=float), np.arange(n0 + 1, dtype=float), indexing="ij")
    v1 = k1 * (n1 - k1) / (n1 * (n1 - 1)) if n1 > 1 else np.full_like(k1, np.nan)
    v0 = k0 * (n0 - k0) / (n0 * (n0 - 1)) if n0 > 1 else np.full_like(k0, np.nan)
    sd = np.sqrt((v1 + v0) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        smd = np.where(sd > 0, (k1 / n1 - k0 / n0) / sd, 0.0)
    return k1, k0, smd


def read_balance(model: Model, html: str, truth: dict, chart_texts: list[str]) -> None:
    """The balance table (standardised differences before weighting, 3 decimals, signed) and the love plot's
    dots (their sizes, read exactly). For a yes/no characteristic the difference before weighting is a function
    of how many in each group have it and the group sizes (the cases analysed, from the counts table), so the
    adversary enumerates every (with in treated, with in control) that gives the published difference, for
    every pair of group sizes still possible (docs/publishing.md, identity 10). Targets: those counts, and the
    group sizes less them, whose true value is from 1 to threshold - 1."""
    P = "iv:"  # noqa: N806
    rows_truth = truth.get("balance", {})
    thr = model_threshold(truth)
    if P + "analysed_treated" not in model.lower or not rows_truth:
        return
    table = {}
    for corner, heads, rows in _tables(BeautifulSoup(html, "html.parser")):
        if corner == "Characteristic" and "Before weighting" in heads:
            table = {label: cells[heads.index("Before weighting")] for label, cells in rows.items()}
    dots = {}
    for line in chart_texts:
        mm = re.match(r"points \| Absolute standardised mean difference \| Before weighting \| (.*)", line)
        if mm and mm.group(1):
            for p in mm.group(1).split(";"):
                label, x = p.rsplit("=", 1)
                dots[label] = float(x)
    sizes = {}
    for arm in ("treated", "control"):
        lo, hi = model._bounds_of({P + f"analysed_{arm}": 1}, {})
        if lo is None or hi - lo > 60:
            return  # too many group sizes to try: the adversary gives the balance table up (weaker, never wrong)
        sizes[arm] = range(max(int(lo), 2), int(hi) + 1)
        if not sizes[arm]:
            return  # one case in a group: no difference is computed
    for label, t in rows_truth.items():
        if label not in table or t.get("treated_with") is None:
            continue
        cell = table[label].strip()
        model.cells += 1 + (label in dots)
        possible: dict[str, set] = {"treated_with": set(), "treated_without": set(), "control_with": set(),
                                    "control_without": set()}
        for n1 in sizes["treated"]:
            for n0 in sizes["control"]:
                k1, k0, smd = _smd_grid(n1, n0)
                ok = np.ones_like(smd, bool)
                if re.fullmatch(r"[-+]\d+\.\d+", cell):
                    ok &= np.abs(smd - float(cell)) <= 0.5 * 10 ** -len(cell.split(".")[1]) + 1e-12
                    if label in dots:
                        ok &= np.abs(np.abs(smd) - dots[label]) <= 1e-9 * max(1.0, dots[label])
                for name, val in (("treated_with", k1), ("treated_without", n1 - k1), ("control_with", k0),
                                  ("control_without", n0 - k0)):
                    possible[name].update(int(v) for v in val[ok])
        truths = {"treated_with": t["treated_with"], "treated_without": t["treated_n"] - t["treated_with"],
                  "control_with": t["control_with"], "control_without": t["control_n"] - t["control_with"]}
        for name, val in truths.items():
            if int(val) not in possible[name]:
                model.broken.append(f"balance {label}: {name} {val} not among the solutions")
            if 1 <= val < thr:
                model.finite.append((f"{P}balance[{label}|{name}]", f"{name.replace('_', ' ')} {label}", int(val),
                                     possible[name]))
