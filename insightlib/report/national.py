"""The national page's words and tables, and the page itself: its sections, figures (drawn by
report/national_charts) and sortable tables.

The numbers come from stats/funnel (limits, over-dispersion, each council's band) and
analyses/national (which funnels, which councils, the reconciliations); DfE's published figures
are shown with DfE's symbols (c suppressed, x not available, u low reliability), never as zero.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Iterable

import pandas as pd

from insightlib import reference
from insightlib.errors import InputError
from insightlib.report import charts, national_charts
from insightlib.report.national_charts import (
    display_value,
    funnel_alt_text,
    funnel_figure,
    published_funnel_title,
    computed_funnel_title,
)
from insightlib.stats.funnel import BANDS, FunnelResult

if TYPE_CHECKING:
    from insightlib.analyses.national import Reconciliation

# --- a council's own figure beside DfE's ----------------------------------------------------------


def reconciliation_table(rec: Reconciliation) -> pd.DataFrame:
    """The computed and the published figures, one row each, as displayed."""
    cols = ("referrals", "rereferrals", "rate")
    return pd.DataFrame(
        [
            {"source": "Computed from this extract", **{k: rec.computed["display"][k] for k in cols}},
            {
                "source": f"Published by DfE ({rec.year})" if rec.year else "Published by DfE",
                **{k: rec.published["display"][k] for k in cols},
            },
        ]
    )


def reconciliation_sentence(rec: Reconciliation) -> str:
    name = reference.council_name(rec.la_code)
    year = f" for the year to 31 March {rec.year}" if rec.year else ""
    if rec.difference_points is None:
        if rec.published.get("rate") is None:
            why = {"c": "suppressed", "x": "not available", "u": "of low reliability"}.get(
                rec.published["display"]["rate"], "not available"
            )
            return f"{name}: DfE's published rate{year} is {why}, so there is nothing to compare with."
        return (
            f"{name}: the rate computed from the extract{year} is hidden because it rests on small numbers, "
            f"so it is not compared with DfE's published {rec.published['display']['rate']}."
        )
    agree = "consistent with" if (rec.p_value is None or rec.p_value >= 0.05) else "different from"
    return (
        f"{name}: computed {rec.computed['display']['rate']} against DfE's published "
        f"{rec.published['display']['rate']} ({rec.difference_points:+.1f} percentage points), "
        f"{agree} the published figure allowing for chance."
    )


# --- a sortable table that works without JavaScript --------------------------------------------


def sortable_table_html(
    df: pd.DataFrame,
    *,
    caption: str,
    sort_keys: dict[str, pd.Series] | None = None,
    table_id: str = "key-figures",
    note: str = "",
) -> str:
    """An HTML table whose column headers sort it (tiny inline script); without JS it is a plain table.

    ``sort_keys`` gives, per column, the value to sort by (numbers behind "12.3%"; blank for
    DfE symbols, which sort last). Cell text is escaped.
    """
    sort_keys = sort_keys or {}
    head = "".join(f'<th scope="col">{html.escape(str(c))}</th>' for c in df.columns)
    body = []
    for i in range(len(df)):
        cells = []
        for c in df.columns:
            text = html.escape("" if pd.isna(df[c].iat[i]) else str(df[c].iat[i]))
            key = sort_keys.get(c)
            attr = ""
            if key is not None:
                k = key.iat[i]
                attr = f' data-sort="{"" if pd.isna(k) else float(k)}"'
                cells.append(f'<td class="num"{attr}>{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    script = resources.files("insightlib").joinpath("templates", "sortable.js").read_text(encoding="utf-8")
    note_html = f'<p class="table-note">{html.escape(note)}</p>' if note else ""
    return (
        f'<div class="table-wrap"><table class="sortable" id="{html.escape(table_id)}">'
        f"<caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>{note_html}\n<script>{script}</script>"
    )


# --- the page ---------------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    title: str
    alt: str
    png: bytes
    png_narrow: bytes | None = None  # the same chart drawn narrow, for phones

    def data_uri(self, narrow: bool = False) -> str:
        data = self.png_narrow if narrow and self.png_narrow else self.png
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@dataclass
class Section:
    """One part of the page: a heading (none for the opening), paragraphs, figures, tables."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)  # (heading, html)


@dataclass
class NationalSummary:
    """Everything on the leaders' page, in reading order: sections of paragraphs, figures (with alt
    text) and HTML tables."""

    year: int
    sections: list[Section]
    computed: pd.DataFrame
    published: FunnelResult
    computed_funnel: FunnelResult | None
    reconciliations: list[Reconciliation]

    @property
    def paragraphs(self) -> list[str]:
        return [p for sec in self.sections for p in sec.paragraphs]

    @property
    def figures(self) -> list[Figure]:
        return [f for sec in self.sections for f in sec.figures]

    @property
    def tables(self) -> list[tuple[str, str]]:
        return [t for sec in self.sections for t in sec.tables]

    def to_dict(self) -> dict:
        return {
            "year": self.year,
            "published_funnel": self.published.to_dict(),
            "computed_funnel": None if self.computed_funnel is None else self.computed_funnel.to_dict(),
            "reconciliations": [r.to_dict() for r in self.reconciliations],
        }

    def html_fragment(self, image_src=None) -> str:
        """The page body. ``image_src(figure, narrow)`` gives each image's src (default: embedded data
        URI); phones get the narrow drawing through a <picture> source."""
        image_src = image_src or (lambda f, narrow=False: f.data_uri(narrow))
        parts = []
        for sec in self.sections:
            if sec.heading:
                parts.append(f"<h2>{html.escape(sec.heading)}</h2>")
            parts += [f"<p>{html.escape(p)}</p>" for p in sec.paragraphs]
            for fig in sec.figures:
                source = ""
                if fig.png_narrow:
                    source = f'<source media="(max-width: 40rem)" srcset="{html.escape(image_src(fig, True))}">'
                parts.append(
                    f'<figure><a class="figure-link" href="{html.escape(image_src(fig, False))}" '
                    f'title="Open the chart full size"><picture>{source}'
                    f'<img src="{html.escape(image_src(fig, False))}" alt="{html.escape(fig.alt)}"></picture></a>'
                    f"<figcaption>{html.escape(fig.title)}</figcaption></figure>"
                )
            for _heading, table_html in sec.tables:
                parts.append(table_html)
        return "\n".join(parts)


def figure(name: str, make, alt: str) -> Figure:
    """``make(width)`` draws the chart; it is drawn wide for screens and print, narrow for phones."""
    import matplotlib.pyplot as plt

    fig = make(7.5)
    title = " ".join(fig._suptitle.get_text().split()) if getattr(fig, "_suptitle", None) else name
    png = charts.to_png(fig)
    plt.close(fig)
    narrow = make(4.8)
    png_narrow = charts.to_png(narrow)
    plt.close(narrow)
    return Figure(name=name, title=title, alt=alt, png=png, png_narrow=png_narrow)


# --- the page's sections ------------------------------------------------------------------------------


def opening_section(
    year: int, england: float, pub_funnel: FunnelResult, plain_out: int, highlight: list[str]
) -> Section:
    """England's rate and the funnel of every council's published rate (``plain_out``: how many would lie
    outside plain binomial 99.8% limits)."""
    counts = pub_funnel.points["band"].value_counts()
    title = published_funnel_title(year)
    return Section(
        "",
        paragraphs=[
            f"In the year to 31 March {year}, {100 * england:.1f}% of referrals to children's social care in England came "
            f"within 12 months of a previous referral (DfE, Characteristics of children in need). The funnel plot places "
            f"each of the {len(pub_funnel.points)} councils with a published rate against that figure: councils inside the "
            f"funnel differ from England by no more than chance would explain for their number of referrals "
            f"(95% and 99.8% control limits).",
            f"Councils differ by far more than chance alone (how they record re-referrals, their thresholds, their "
            f"populations): with plain binomial limits {plain_out} of them would lie outside the 99.8% funnel. The limits "
            f"shown are therefore widened by the over-dispersion factor ({pub_funnel.phi:.1f}, Spiegelhalter 2005). "
            f"{int(counts.get(BANDS[0], 0))} councils lie above the widened 99.8% limit and "
            f"{int(counts.get(BANDS[4], 0))} below it. A council outside the funnel is a question to ask, not a verdict.",
        ],
        figures=[
            figure(
                "published_funnel",
                lambda w: funnel_figure(pub_funnel, title, highlight, width=w),
                funnel_alt_text(pub_funnel, highlight=highlight),
            )
        ],
    )


#: The paragraph before the councils' own figures beside DfE's.
RECONCILIATION_INTRO = (
    "Each council's 12-month re-referral rate computed from its own extract (DfE's measure: referrals in "
    "the year to 31 March that came within 12 months of a previous referral of the same child) beside the "
    "figure DfE published for it. They should agree closely; a large difference usually means the extract "
    "covers different years or children, not an error in either figure."
)


def reconciliation_rows(reconciliations: list[Reconciliation], bands: list[str]) -> tuple[pd.DataFrame, dict]:
    """The computed-against-published table (``bands``: each council's place in its own year's published
    funnel) and the numbers its columns sort by."""
    rec = pd.DataFrame(
        [
            {
                "Council": reference.council_name(r.la_code),
                "Computed rate": r.computed["display"]["rate"],
                "Published rate": r.published["display"]["rate"],
                "Difference (points)": "" if r.difference_points is None else f"{r.difference_points:+.1f}",
                "Year": r.year,
                "Code": r.la_code,
                "Referrals (computed)": r.computed["display"]["referrals"],
                "Referrals (published)": r.published["display"]["referrals"],
                "Against England, same year (published)": band,
            }
            for r, band in zip(reconciliations, bands)
        ]
    )
    keys = {
        "Computed rate": pd.Series([r.computed["rate"] for r in reconciliations], dtype=float),
        "Published rate": pd.Series([r.published["rate"] for r in reconciliations], dtype=float),
        "Difference (points)": pd.Series([r.difference_points for r in reconciliations], dtype=float),
        "Referrals (computed)": pd.Series(
            [r.computed["referrals"] if r.computed["display"]["referrals"] != "c" else None for r in reconciliations],
            dtype=float,
        ),
        "Referrals (published)": pd.Series([r.published["referrals"] for r in reconciliations], dtype=float),
    }
    return rec, keys


def other_year_paragraph(other_codes: Iterable[str], funnel_year: int | None, any_in_funnel: bool) -> str:
    """Councils whose figure is for another year than the computed funnel's: named, compared in the table."""
    names = sorted(reference.council_name(c) for c in other_codes)
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    return (
        (
            f"The funnel below compares councils' figures for the year to 31 March {funnel_year} with England's "
            f"rate for that year. "
            if funnel_year is not None and any_in_funnel
            else ""
        )
        + f"{listed} {'has' if len(names) == 1 else 'have'} a figure for another year, so "
        f"{'it is' if len(names) == 1 else 'they are'} compared with England in the table above (same year), "
        "not in the funnel."
    )


def computed_funnel_paragraph(funnel_year: int, phi: float) -> str:
    return (
        f"The funnel of the councils' own figures uses the same limits as every council's published funnel for "
        f"{funnel_year} (binomial limits widened by its over-dispersion factor, {phi:.1f}), so a council's place "
        "in it reads the same way; the table's last column gives each council's place."
    )


def computed_funnel_figure(computed_funnel: FunnelResult, highlight: list[str]) -> Figure:
    title = computed_funnel_title(computed_funnel.year)
    measure = "computed 12-month re-referral rate"
    return figure(
        "computed_funnel",
        lambda w: funnel_figure(computed_funnel, title, highlight, width=w),
        funnel_alt_text(computed_funnel, measure, highlight),
    )


def reconciliation_table_html(rec: pd.DataFrame, keys: dict) -> tuple[str, str]:
    return (
        "Computed against published",
        sortable_table_html(
            rec,
            caption="Computed against published",
            sort_keys=keys,
            table_id="reconciliation",
            note="Select a column heading to sort. c: suppressed (a small number); x: not available; "
            "u: low reliability. Difference: computed minus published, in percentage points. "
            "Both places against England use the same widened limits.",
        ),
    )


def trends_section(codes: list[str], trend_councils: int) -> Section | None:
    """Up to ``trend_councils`` councils' published rates by year (None when none can be drawn)."""
    pub = reference.published_rereferral_rates()
    trends = Section(
        f"Trends, {int(pub['year'].min())} to {reference.latest_published_year()}",
        paragraphs=[
            "Each council's published rate by year beside England and the median of its ten statistical neighbours. "
            "Gaps are years DfE did not publish a figure (marked c, x or u)."
        ],
    )
    have = set(pub["la_code"])
    for code in [c for c in codes if c in have][:trend_councils]:
        try:
            fig_alt = national_charts.trend_plot(code)
        except InputError:
            continue
        import matplotlib.pyplot as plt

        plt.close(fig_alt[0])
        trends.figures.append(
            figure(f"trend_{code}", lambda w, c=code: national_charts.trend_plot(c, width=w)[0], fig_alt[1])
        )
    return trends if trends.figures else None


def deprivation_section() -> Section:
    """Children in need per 10,000 against what each council's deprivation predicts (docs/practice.md)."""
    from insightlib.analyses.published_practice import children_in_need_funnel
    from insightlib.report.practice import FUNNEL_TITLE, deprivation_funnel_figure

    f = children_in_need_funnel()
    t = f.table
    n_out = t["verdict"].str.startswith(("above", "below")).sum()
    year = t.attrs.get("year")
    table = pd.DataFrame(
        {
            "Council": t["la_name"],
            "Per 10,000 children": t["rate"].round(0).astype(int),
            "Expected for its deprivation": t["expected_rate"].round(0).astype(int),
            "Observed / expected": t["ratio"].round(2),
            "Against its deprivation": t["verdict"],
        }
    )
    return Section(
        f"Children in need for each council's deprivation, {year}",
        paragraphs=[
            f"Children in need at 31 March {year} per 10,000 children, against the rate each council's deprivation "
            f"(IDACI 2019) predicts, so that a council sees whether it is high for its deprivation, not merely high. "
            f"All {len(t)} councils are in it; {n_out} lie outside the 95% limits, which allow for councils differing "
            f"by more than chance (over-dispersion, Spiegelhalter 2005)."
        ],
        figures=[
            figure(
                "deprivation_funnel",
                lambda w: deprivation_funnel_figure(f, width=w)[0],
                deprivation_funnel_figure(f)[1],
            )
        ],
        tables=[
            (
                FUNNEL_TITLE,
                sortable_table_html(
                    table,
                    caption=f"Children in need per 10,000 against deprivation, {year} (published DfE, ONS, MHCLG data)",
                    table_id="deprivation",
                    note="Select a column heading to sort.",
                ),
            )
        ],
    )


def published_table_section(year: int, pub_funnel: FunnelResult) -> Section:
    """Every council's published figures for ``year`` with its place in the published funnel."""
    pub = reference.published_rereferral_rates(year).merge(
        pub_funnel.points[["la_code", "band"]], on="la_code", how="left"
    )
    pub["band"] = pub["band"].fillna("not published")
    table = pd.DataFrame(
        {
            "Council": pub["la_name"],
            "Region": pub["region"],
            "Referrals": [display_value(v, s, "count") for v, s in zip(pub["referrals"], pub["referrals_symbol"])],
            "Re-referrals": [
                display_value(v, s, "count") for v, s in zip(pub["rereferrals"], pub["rereferrals_symbol"])
            ],
            "Rate": [display_value(v, s, "rate") for v, s in zip(pub["rate"], pub["rate_symbol"])],
            "Against England": pub["band"],
        }
    )
    keys = {"Referrals": pub["referrals"], "Re-referrals": pub["rereferrals"], "Rate": pub["rate"]}
    heading = f"Every council's published figures, {year}"
    html_table = sortable_table_html(
        table,
        caption=f"DfE's published 12-month re-referral figures, year to 31 March {year}",
        sort_keys=keys,
        table_id="published",
        note="Select a column heading to sort. c: suppressed; x: not available; u: low reliability "
        "(DfE's symbols, never zero). Against England: the council's place in the funnel above.",
    )
    return Section(heading, tables=[(heading, html_table)])
