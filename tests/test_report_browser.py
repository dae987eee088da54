"""The report opens from disk in a real browser with no network: no request leaves the disk, every figure loads
(naturalWidth > 0), no script or console error, and its tables sort by a click.

Headless Chromium is driven as tests/test_docs_site.py drives it (its Browser, imported from there; without a
Chromium both skip). Reproduce the measurement with::

    PYTHONPATH=. python -m pytest tests/test_report_browser.py -s -q
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_docs_site import CHROMIUM, Browser, Visit, _record

pytestmark = pytest.mark.slow

# What the page shows, measured in the page: every image and whether it loaded, and a sortable table's column.
INSPECT = r"""(() => ({
  images: [...document.images].map(img => ({alt: img.alt, loaded: img.complete && img.naturalWidth > 0,
                                            width: img.naturalWidth, local: img.currentSrc.startsWith("data:")})),
  tables: document.querySelectorAll("table.sortable").length,
}))()"""

SORT = r"""(() => {
  const table = [...document.querySelectorAll("table.sortable")].find(t => t.tHead.rows[0].cells.length > 3
                                                                         && t.tBodies[0].rows.length > 2);
  const column = [...table.tHead.rows[0].cells].findIndex(th => th.textContent.startsWith("λ"));
  const values = () => [...table.tBodies[0].rows].map(r => parseFloat(r.cells[column].dataset.v));
  table.tHead.rows[0].cells[column].querySelector("button").click();
  const up = values();
  table.tHead.rows[0].cells[column].querySelector("button").click();
  return {up, down: values()};
})()"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """The report of an atlas folder: a tiny run and a tiny reversal suite (three figures in all)."""
    from test_report import RUN
    from test_suites_reversal import TINY, run

    from lazyrich.experiment import run_experiment
    from lazyrich.results.report import write
    from lazyrich.suites import report_views

    atlas = tmp_path_factory.mktemp("atlas")
    run_experiment(RUN, atlas / "run")
    run(atlas / "reversal", "reversal", TINY)
    return write(atlas, suites=report_views())


def test_the_report_opens_offline_and_shows_every_figure(page):
    browser = Browser(CHROMIUM)
    visit = Visit(page.name)
    try:
        events = browser.open(page.as_uri())
        seen = browser.evaluate(INSPECT)
        order = browser.evaluate(SORT)
        events += browser.drain()
    finally:
        browser.close()
    _record(visit, events)
    requests = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    schemes = sorted({urlsplit(url).scheme for url in requests})
    print(f"\n[report] {len(requests)} requests (schemes {schemes}), {len(seen['images'])} images, "
          f"{sum(i['loaded'] for i in seen['images'])} loaded, {seen['tables']} sortable tables")
    assert all(urlsplit(url).scheme in ("file", "data") for url in requests), requests  # nothing off the disk
    assert not visit.external and not visit.failed, (visit.external, visit.failed)
    assert not visit.errors and not visit.console, (visit.errors, visit.console)
    assert len(seen["images"]) == 3, seen["images"]  # run/curves.png, reversal/curves.png, reversal/sweep.png
    assert all(i["loaded"] and i["width"] > 0 and i["local"] for i in seen["images"]), seen["images"]
    assert order["up"] == sorted(order["up"]) and order["down"] == sorted(order["down"], reverse=True)
