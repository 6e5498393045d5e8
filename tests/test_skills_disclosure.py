"""The skills report publishes nothing about people that is not already public (issue 9, item 2).

It is built from published area aggregates only (the files shipped in insightlib/reference/skills, made from
DfE's and ONS's releases), never from a council's extract. Its tables are rendered as the page shows them and
every count of people on them is traced back to those files: each is the sum over the area's districts of the
published figures (FE achievements, apprenticeship starts and achievements, APS employment by occupation and
by industry, the Employer Skills Survey's counts), or a "c" that disclosure control put where that sum is from
1 to threshold - 1. Shares and indices are computed from the same published figures (FE's '~', fewer than 5,
counted as its midpoint 2.5, and the index's continuity correction), so they give back nothing but published figures.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup

from insightlib.analyses import skills
from insightlib.analyses.skills_area import among
from insightlib.report.skills import SkillsReport
from insightlib.stats.gap_index import CONTINUITY

REF = Path(__file__).resolve().parents[1] / "insightlib" / "reference" / "skills"
THRESHOLD = 5


def _cells(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the rendered page shows it (pandas' HTML, read back cell by cell as text)."""
    soup = BeautifulSoup(table.to_html(index=False), "html.parser")
    heads = [th.get_text(strip=True) for th in soup.find("thead").find_all("th")]
    rows = [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in soup.find("tbody").find_all("tr")]
    return pd.DataFrame(rows, columns=heads)


def _count(text: str) -> float | None:
    text = text.strip().lstrip("±").replace(",", "")
    return None if text == "c" else float(text)


def _check(shown: str, published: float, why: str, small_possible: bool = False) -> None:
    """A count on the page is the published sum, or "c" where that sum is small."""
    value = _count(shown)
    if value is None:
        assert 1 <= published < THRESHOLD or small_possible, f"{why}: 'c' where the published sum is {published}"
    else:
        assert value == pytest.approx(published, abs=0.5), f"{why}: page {shown}, published {published}"
        assert not 1 <= value < THRESHOLD, f"{why}: a small count shown ({shown})"


@pytest.fixture(scope="module", params=["371", "Dorset"])  # one district (Doncaster); an LSIP area of two
def page(request):
    result = skills.analyse(request.param, draws=100)
    return result, SkillsReport(result, threshold=THRESHOLD)


def test_every_count_of_people_on_the_skills_page_is_a_published_figure(page):
    result, report = page
    districts = list(result.area.districts)

    fe = pd.read_csv(REF / "fe.csv")
    fe = fe[(fe["level"] == "localAuthorityDistrict") & among(fe["area"], districts)]
    subjects = _cells(report.subject_table())
    shares = []
    for _, row in subjects.iterrows():
        cells = fe[fe["ssa"] == row["Sector subject area"]]
        tilde = int((cells["symbol"] == "~").sum())
        published = float(cells["achievements"].fillna(0).sum())
        _check(row["FE achievements 2021/22"], published, row["Sector subject area"], small_possible=tilde > 0)
        shares.append((published + 2.5 * tilde, float(row["Share of FE learners"].rstrip("%")) / 100))
    total = sum(v + CONTINUITY for v, _ in shares)
    for v, s in shares:  # the share of learners: published figures (with '~' at its midpoint) only
        assert abs((v + CONTINUITY) / total - s) <= 0.0005 + 1e-9

    app = pd.read_csv(REF / "apprenticeships.csv")
    app = app[among(app["area"], districts)].groupby("year")[["starts", "achievements"]].sum()
    for _, row in _cells(report.apprenticeship_table()).iterrows():
        year = row["Academic year"]
        for col in ("Starts", "Achievements"):
            _check(row[col], float(app.loc[year, col.lower()]), f"apprenticeship {col.lower()} {year}")

    occ = pd.read_csv(REF / "occupation.csv", dtype={"soc": str})
    occ = occ[among(occ["area"], districts) & (occ["year"] == 2021)].groupby("soc")["employed"].sum()
    for _, row in _cells(report.occupation_table()).iterrows():
        soc = row["Occupation (SOC sub-major group)"].split(" ")[0]
        _check(row["Employed (APS 2021)"], float(occ.get(soc, 0.0)), f"employed in SOC {soc}")

    ind = pd.read_csv(REF / "industry.csv")
    table = _cells(report.industry_table())
    year = int(next(c for c in table.columns if c.startswith("Employed ")).split(" ")[1])
    ind = ind[among(ind["area"], districts) & (ind["year"] == year)].groupby("industry")["employed"].sum()
    for _, row in table.iterrows():
        _check(row[f"Employed {year}"], float(ind[row["Industry (APS)"]]), f"employed in {row['Industry (APS)']}")

    ess = pd.read_csv(REF / "ess.csv").set_index("area")
    for _, row in _cells(report.employer_table()).iterrows():
        if row["Area"] in ess.index:  # the council, its region, England; the neighbours' median is a median
            e = ess.loc[row["Area"]]
            for col, src in (("Establishments interviewed", "sampled"), ("Vacancies", "vacancies"),
                             ("Skill-shortage vacancies", "ssv")):
                _check(row[col], float(e[src]), f"{row['Area']} {col}")
