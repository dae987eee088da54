"""``lazyrich report``: one self-contained HTML page for a finished folder — the verdicts, the figures inline,
sortable tables, seed means with bootstrap intervals, the agreement of each theory per regime, the config and the
provenance — that opens with no network and no server, and whose every value ``--check`` recomputes.

- :mod:`~lazyrich.results.report.build`: the folder's studies (runs, suites) as sections of :class:`Number`;
- :mod:`~lazyrich.results.report.stats`: seed means with percentile-bootstrap intervals, theory agreement;
- :mod:`~lazyrich.results.report.html`: the page, and reading it back;
- :mod:`~lazyrich.results.report.command`: :func:`write`, :func:`check` and the command line.
"""

from lazyrich.results.report.build import SuiteView, build, discover
from lazyrich.results.report.command import check, main, write
from lazyrich.results.report.model import Number, Report

__all__ = ["Number", "Report", "SuiteView", "build", "check", "discover", "main", "write"]
