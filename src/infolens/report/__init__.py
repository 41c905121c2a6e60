"""Self-contained HTML reports (one file, works offline) and their figures.

* :func:`render_score_report`: where a language model is surprised (``infolens score
  --report``): summary numbers, text coloured by surprisal with per-token tooltips,
  histograms, surprisal against position, most surprising spans, per-document table.
* :class:`CompareReport`: where two models disagree (``infolens compare --report``): the
  KL distribution, KL against position, text coloured by KL(base‖model) with both models'
  alternatives, the most divergent tokens.
* :mod:`infolens.report.html`: the generic building blocks (coloured token text with
  tooltips, summary table, sortable table, figure) for other reports.
* :mod:`infolens.report.plots`: matplotlib (Agg) figures as inline SVG or PNG files.
"""

from __future__ import annotations

from infolens.report.compare_report import CompareReport
from infolens.report.score_report import ScoreReport, render_score_report

__all__ = ["CompareReport", "ScoreReport", "render_score_report"]
