"""An evaluation's answer across its councils: one sentence, a forest plot and a table.

A director who opens an evaluation's page should not have to open six reports to learn whether
Family Group Conferences worked. ``summarise(notebook, reports)`` reads each council's
``results.json`` (never the HTML) and gives:

* every council's estimate with its interval, in the report's own units;
* where the councils evaluated the same intervention (same horizon and estimand), the pooled
  random-effects estimate (``insightlib.stats.meta``, REML), its heterogeneity (I^2) and the
  prediction interval for a council like these;
* the sentence that answers the evaluation's question, a forest plot (wide and narrow for phones)
  and a table whose counts pass through disclosure control.

A council whose estimate rests on fewer than its disclosure threshold of children in a group is
shown as "c" and left out of the chart and the pooling.
"""

from __future__ import annotations
from insightlib.report.summary_charts import forest_chart
from insightlib.report.summary_intervention import intervention_summary
from insightlib.report.summary_programme import programme_summary
from insightlib.report.summary_rereferral import rereferral_summary
from insightlib.report.summary_skills import skills_summary
from insightlib.report.summary_table import Summary

#: The estimate a council report's headline gives, for each notebook that has one.
SUMMARISED = ("intervention_effect", "rereferral", "programme_evaluation", "skills_gap")


def summarise(notebook: str, reports: list[tuple[str, str, dict]], *, title: str = "") -> Summary | None:
    """The summary for one evaluation; ``reports`` are (code, label, results.json contents), one per
    council or area report that finished. None when the notebook has no cross-council answer."""
    reports = [(c, label, res) for c, label, res in reports if isinstance(res, dict) and res]
    if not reports:
        return None
    make = {
        "intervention_effect": intervention_summary,
        "rereferral": rereferral_summary,
        "programme_evaluation": programme_summary,
        "skills_gap": skills_summary,
    }.get(notebook)
    if make is None:
        return None
    summary = make(reports)
    if summary is not None and summary.rows and any(r.shown for r in summary.rows):
        summary.chart = forest_chart(summary, title)
    return summary
