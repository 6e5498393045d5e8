"""The adversary's readers of the intervention report's later sections (docs/publishing.md, identities 20-25):
who responds best (subgroups), what if we offered more (scenarios), the robustness checks' sample, the share
set aside for poor overlap, the effective sample sizes, and a second evaluation of the same children.

Each writes exact identities over whole-number unknowns into the adversary's Model (tests/disclosure_attack.py),
as every other reader does; the truth passed in is used only to check them and to say which counts are small."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from disclosure_attack import Model, Target, _int, _text, model_threshold

P = "iv:"
#: Kish's effective sample size is at most the group's size, and with ATT the treated weights are 1 (equal).
ARMS = {"treated": "with the intervention", "control": "without"}


def _known(model: Model, name: str) -> bool:
    return name in model.lower and model.lower[name] == model.upper[name]


def read_ess(model: Model, text: str, truth: dict, prefix: str = P) -> None:
    """Identity 24: "Effective sample size after weighting: 3 cases with the intervention and 27 without". Kish's
    ESS (sum w)^2 / sum w^2 is at most the number of cases, so a group has at least ESS - 0.5 (printed whole);
    with ATT every treated weight is 1, so the treated ESS is their number."""
    for arm, words in ARMS.items():
        m = re.search(rf"Effective sample size after weighting:.*?([\d,]+) cases {words}", text)
        if arm == "control":
            m = re.search(r"Effective sample size after weighting:.*? and ([\d,]+) (?:cases )?without", text)
        if not m:
            continue
        v = _int(m.group(1))
        model.cells += 1
        n = prefix + f"analysed_{arm}"
        model.add({n: 1}, lo=v - 0.5, why=f"{arm}: effective sample size {v} <= cases analysed")
        if arm == "treated" and truth.get("estimand") == "ATT":
            model.add({n: 1}, lo=v - 0.5, hi=v + 0.5, why=f"ATT: the treated ESS {v} is their number")


def read_set_aside(model: Model, text: str, prefix: str = P) -> None:
    """Identity 23: "(23% of 62 were set aside for poor overlap)": the cases set aside are the closed cases at risk
    less those analysed, and the share (a whole percent) bounds them, (s - 0.5%) E <= E - A <= (s + 0.5%) E."""
    m = re.search(r"\((\d+)% of ([\d,]+) were set aside", text)
    if not m:
        return
    s = int(m.group(1)) / 100
    model.cells += 1
    e, a = prefix + "episodes", prefix + "analysed_total"
    model.add({e: 1 - (s + 0.005), a: -1}, hi=0, why=f"{s:.0%} set aside, at most")
    model.add({e: 1 - (s - 0.005), a: -1}, lo=0, why=f"{s:.0%} set aside, at least")
    m = re.search(r"Episodes outside [\d.]+ to [\d.]+ \(([\d,]+)\) were set aside", text)
    if m:
        model.cells += 1
        model.add({e: 1, a: -1}, _int(m.group(1)), _int(m.group(1)), "the overlap chart's cases set aside")


def read_refutations(model: Model, text: str, truth: dict, prefix: str = P) -> None:
    """Identity 22: the robustness checks run on the cases followed for the whole period, or a random sample of
    ``refutation_sample`` of them (a parameter of the evaluation file, known to the adversary): "a random sample
    of 20 closed cases" with 300 asked for is every case followed, the counts table's total followed."""
    m = re.search(r"on a random sample of ([\d,]+) closed cases", text)
    if not m:
        return
    rows, sample = _int(m.group(1)), int(truth.get("refutation_sample") or 0)
    model.cells += 1
    followed = prefix + "binary_total"
    model.add({followed: 1}, lo=rows, why="the checks' sample is at most the cases followed")
    if rows < sample:
        model.add({followed: 1}, lo=rows, hi=rows, why="the checks' sample, smaller than asked: every case followed")


def _subgroup_rows(html: str) -> list[tuple[str, str, str]]:
    """(characteristic, subgroup, effect cell) of the subgroup table (its row headers span the characteristic)."""
    soup = BeautifulSoup(html, "html.parser")
    for t in soup.find_all("table"):
        heads = [th.get_text(" ", strip=True) for th in t.find_all("th")]
        if not any(h.startswith("Effect on re-referral within") for h in heads):
            continue
        out, char = [], ""
        for tr in (t.find("tbody") or t).find_all("tr"):
            ths, tds = tr.find_all("th"), tr.find_all("td")
            if not tds:
                continue
            names = [th.get_text(" ", strip=True) for th in ths]
            if len(names) >= 2:
                char = names[0]
            out.append((char, names[-1], tds[0].get_text(" ", strip=True)))
        return out
    return []


def read_subgroups(model: Model, html: str, truth: dict, prefix: str = P) -> None:
    """Identity 20: the subgroup table. Each subgroup listed has at least one case followed; a subgroup whose effect
    is shown has at least ``min_arm`` (10, or the threshold if larger) cases followed in each group; one "too few to
    estimate" has fewer than that in one group or the other (a whole-number choice, z); a characteristic's subgroups
    add up, in each group, to the counts table's cases followed. Targets: a subgroup's cases in a group where the
    truth is from 1 to threshold - 1 (counts no page publishes, small cells of intervention by characteristic)."""
    rows = _subgroup_rows(html)
    sizes = truth.get("subgroups", {})
    if not rows or prefix + "binary_treated" not in model.lower:
        return
    thr, min_arm = model_threshold(truth), int(truth.get("min_arm", 10))
    by_char: dict[str, list[tuple[str, str]]] = {}
    for char, level, cell in rows:
        model.cells += 1
        t = sizes.get((char, level))
        names = {}
        for k, arm in enumerate(("treated", "control")):
            names[arm] = model.var(f"{prefix}sub[{char}|{level}|{arm}]", truth=None if t is None else t[k])
        model.add({names["treated"]: 1, names["control"]: 1}, lo=1, why=f"subgroup {char}: {level} is listed")
        if re.fullmatch(r"[-+]\d+(?:\.\d+)? points", cell):
            for arm in names.values():
                model.add({arm: 1}, lo=min_arm, why=f"subgroup {char}: {level} estimated")
        elif cell.startswith("too few"):
            z = model.var(f"{prefix}sub[{char}|{level}|z]", 0, 1,
                          truth=None if t is None else int(t[0] >= min_arm))
            # z = 0: the treated are fewer than min_arm; z = 1: the controls are
            model.add({names["treated"]: 1, z: -10**6}, hi=min_arm - 1, why=f"subgroup {char}: {level} too few (z)")
            model.add({names["control"]: 1, z: 10**6}, hi=min_arm - 1 + 10**6, why=f"subgroup {char}: {level} too few")
        by_char.setdefault(char, []).append((names["treated"], names["control"]))
        for k, arm in enumerate(("treated", "control")):
            if t is not None and 1 <= t[k] < thr:
                model.targets.append(Target(names[arm], {names[arm]: 1}, t[k], f"subgroup {char}: {level}, {arm}"))
    for char, levels in by_char.items():
        for k, arm in enumerate(("treated", "control")):
            expr = {lv[k]: 1 for lv in levels}
            expr[prefix + f"binary_{arm}"] = -1
            model.add(expr, 0, 0, f"subgroups of {char} add up to the {arm} followed")


def read_scenarios(model: Model, html: str, truth: dict, prefix: str = P) -> None:
    """Identity 21: "About 21 cases like those analysed closed each year (mean of 3 years)": the analysed cases
    closed in the last k years, S, are within k (V +- 0.5); each uncapped scenario's change in cases a year is
    S / k times its share (printed whole from 10, to 0.1 below), and withdrawing it, S / k times the share now
    receiving it (T / N, when the counts table shows both). S is at most the cases analysed; the rest, analysed
    but closed before the windows counted, is published nowhere: a target where the truth is from 1 to
    threshold - 1."""
    text = _text(BeautifulSoup(html, "html.parser"))
    m = re.search(r"About ([\d,]+) cases like those analysed closed each year \(mean of (\d+) years?\)", text)
    if not m or "volume" not in truth:
        return
    v, k = _int(m.group(1)), int(m.group(2))
    model.cells += 1
    s = model.var(prefix + "scenario_volume", truth=sum(truth["volume"]))
    model.add({s: 1}, lo=k * (v - 0.5), hi=k * (v + 0.5), why=f"about {v} a year over {k} years")
    model.add({s: 1, prefix + "analysed_total": -1}, hi=0, why="the scenarios' cases are analysed cases")
    known_share = _known(model, prefix + "analysed_treated") and _known(model, prefix + "analysed_total")
    now = re.search(r"\(mean of \d+ years?\), and (\d+)% of them received", text)
    for mm in re.finditer(r"- (\d+)% more of eligible cases receive it \(about ([\d.,]+) cases a year (more|fewer)\)",
                          text):
        share, x = int(mm.group(1)) / 100, float(mm.group(2).replace(",", ""))
        if not now or int(now.group(1)) / 100 + share >= 0.99:
            continue  # perhaps capped at everyone: its change is not share x S / k
        half = 0.5 if x >= 10 else 0.05
        model.cells += 1
        model.add({s: share / k}, lo=x - half, hi=x + half, why=f"{share:.0%} more: about {x:g} cases a year")
    mm = re.search(r"- No one receives it \(about ([\d.,]+) cases a year fewer\)", text)
    if mm and known_share:
        x = float(mm.group(1).replace(",", ""))
        half = 0.5 if x >= 10 else 0.05
        share = model.lower[prefix + "analysed_treated"] / model.lower[prefix + "analysed_total"]
        model.cells += 1
        model.add({s: share / k}, lo=x - half, hi=x + half, why=f"no one: about {x:g} cases a year fewer")
    rest = truth.get("analysed", 0) - sum(truth["volume"])
    if 1 <= rest < model_threshold(truth):
        expr = {prefix + "analysed_total": 1, s: -1}
        model.targets.append(Target(prefix + "scenario_rest", expr, rest, "analysed cases closed before the windows"))


def read_pair(model: Model, first: str, second: str, truth: dict) -> None:
    """Identity 25: two intervention evaluations of the same council's children (two interventions, or one with ATE
    and ATT). Both count the same closed cases at risk (the re-referral report's episodes followed up, read by each);
    where neither set any aside (each says "all N closed cases at risk"), both analysed every one of those cases, so
    the cases followed for the whole period and those re-referred within it are the same cases on both pages (their
    totals are equal), and for the same intervention so is each group's split."""
    for p in (first, second):
        if p + "analysed_total" not in model.lower:
            return
    model.cells += 1
    if not truth.get("all_analysed"):
        return
    for key in ("analysed", "binary", "rereferred"):
        model.add({first + f"{key}_total": 1, second + f"{key}_total": -1}, 0, 0, f"both evaluations' {key} total")
    if truth.get("same_intervention"):
        for key in ("analysed", "binary", "rereferred"):
            for arm in ("treated", "control"):
                model.add({first + f"{key}_{arm}": 1, second + f"{key}_{arm}": -1}, 0, 0,
                          f"the same intervention: {key} {arm}")
