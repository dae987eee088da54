"""The built documentation site works offline, opened from disk in a real browser.

Every page of the site (built once, tests/conftest.py ``site``) is opened over ``file://`` in headless Chromium,
driven through its DevTools protocol over a websocket (the ``websocket-client`` package of the dev extra). Host
names do not resolve in that browser, as behind a firewall. The tests fail on a request to anything but a local
file, a local file that does not load, a script error or a console error, a formula left as TeX, search that
finds nothing from ``file://``, a figure not linked to its full-size file, and a code block wider than the
content column.

Chromium comes from the system (``apt-get install -y chromium``) or ``$LAZYRICH_CHROMIUM``; without one, the
tests skip. Reproduce the measurements with::

    PYTHONPATH=. python -m pytest tests/test_docs_site.py -s -q
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import websocket

pytestmark = pytest.mark.slow  # the built site opened in a browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
QUERY = "kernel distance"
# TeX that a page would show if a formula was not converted (code blocks and MathML are left out of the check).
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$"
                     r"|\\(?:frac|begin|end|mathbb|mathcal|operatorname|tilde|hat|lambda|sigma|Sigma|top|left|right"
                     r"|sqrt|sum|int|partial|lVert|rVert|tfrac)\b")
WIDTH, HEIGHT = 1280, 900


def _chromium() -> str | None:
    given = os.environ.get("LAZYRICH_CHROMIUM")
    if given:
        return given if shutil.which(given) else None
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


CHROMIUM = _chromium()
if CHROMIUM is None:  # one line in the test report, not one per test
    pytest.skip("no Chromium to open the docs in (apt-get install -y chromium, or set LAZYRICH_CHROMIUM)",
                allow_module_level=True)


class DevTools:
    """A minimal Chrome DevTools protocol client: commands, and the events that arrive meanwhile."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, session: str | None = None, **params):
        ident = next(self.ids)
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = self._receive(60)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait(self, method: str, timeout: float = 30.0) -> dict:
        """The first buffered or arriving event ``method`` (consumed)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} within {timeout} s")
            self._receive(left)

    def _receive(self, timeout: float) -> dict:
        self.ws.settimeout(timeout)
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def close(self) -> None:
        self.ws.close()


class Browser:
    """Headless Chromium with one tab, which records what each page requests and reports."""

    def __init__(self, executable: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="lazyrich-chromium-")
        args = [executable, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--mute-audio", "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves: offline, and nothing hangs
                f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.devtools = DevTools(self._endpoint())
        target = self.devtools.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.devtools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                  mobile=False)

    def _endpoint(self) -> str:
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if port_file.is_file() and len(lines := port_file.read_text().split()) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.1)
        raise TimeoutError("Chromium did not open its DevTools port within 60 s")

    def call(self, method: str, **params):
        return self.devtools.call(method, self.session, **params)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}…: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> list[dict]:
        """Load ``url``, wait for its load event; the events it caused."""
        self.devtools.events.clear()
        self.call("Page.navigate", url=url)
        self.devtools.wait("Page.loadEventFired", timeout=60)
        self.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")  # scripts settle
        return self.drain()

    def drain(self) -> list[dict]:
        events, self.devtools.events = self.devtools.events, []
        return [e for e in events if e.get("sessionId") == self.session]

    def close(self) -> None:
        try:
            self.devtools.call("Browser.close")
        except Exception:
            pass
        self.devtools.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@dataclass
class Visit:
    """What one page did and showed."""

    page: str
    external: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    formulas: int = 0
    unrendered: int = 0
    raw_tex: list[str] = field(default_factory=list)
    figures: int = 0
    unlinked_figures: list[str] = field(default_factory=list)
    broken_figures: list[str] = field(default_factory=list)
    wide_code: list[str] = field(default_factory=list)


# Measured in the page: formulas, TeX left in the text, figures and their links, code blocks against the column.
INSPECT = r"""(() => {
  const article = document.querySelector("article.md-content__inner");
  const maths = [...article.querySelectorAll("math")];
  const text = article.cloneNode(true);
  text.querySelectorAll("pre, code, math, script, style").forEach(e => e.remove());
  const right = article.getBoundingClientRect().right;
  return {
    formulas: maths.length,
    unrendered: maths.filter(m => {
      const box = m.getBoundingClientRect();
      return !(box.width > 0 && box.height > 0);
    }).length,
    text: text.textContent,
    figures: [...article.querySelectorAll("img")].map(img => ({
      src: img.currentSrc || img.src,
      link: img.closest("a") ? img.closest("a").href : null,
      loaded: img.complete && img.naturalWidth > 0,
    })),
    wide: [...article.querySelectorAll("pre > code")]
      .filter(c => c.scrollWidth > c.clientWidth + 1 || c.getBoundingClientRect().right > right + 1)
      .map(c => c.textContent.split("\n")[0].slice(0, 60)),
  };
})()"""


def _record(visit: Visit, events: list[dict]) -> None:
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if urlsplit(url).scheme not in LOCAL_SCHEMES:
                visit.external.append(url)
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            visit.failed.append(f"{params.get('errorText')} ({params.get('type')})")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            visit.errors.append(details.get("exception", {}).get("description") or details.get("text", "?"))
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            visit.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            visit.console.append(f"{entry.get('text')} {entry.get('url', '')}".strip())


@dataclass
class Browsed:
    """The whole site as the browser saw it, and the search from file://."""

    site: Path
    visits: list[Visit]
    hits: int = 0
    hit_links: list[str] = field(default_factory=list)
    hit_titles: list[str] = field(default_factory=list)
    nested_hits: int = 0
    searching: list[Visit] = field(default_factory=list)  # the pages again, while the search runs

    def summary(self) -> str:
        count = lambda name: sum(len(getattr(v, name)) for v in self.visits + self.searching)  # noqa: E731
        return (f"{len(self.visits)} pages over file://: {sum(v.formulas for v in self.visits)} formulas as MathML "
                f"({sum(v.unrendered for v in self.visits)} not laid out), {count('raw_tex')} left as TeX, "
                f"{count('external')} external requests, {count('failed')} failed loads, {count('errors')} JS "
                f"errors, {count('console')} console errors, "
                f"{sum(v.figures for v in self.visits)} figures ({count('unlinked_figures')} not linked to their "
                f"full-size file), {count('wide_code')} code blocks wider than the column; search {QUERY!r}: "
                f"{self.hits} hits (from a nested page: {self.nested_hits})")


def _search(browser: Browser, url: str, query: str, visit: Visit) -> tuple[int, list[str], list[str]]:
    """Type ``query`` into the search box of ``url``; the hit count it reports, the hits' links and titles.
    What the page did meanwhile goes to ``visit``."""
    _record(visit, browser.open(url))
    assert browser.evaluate("!!document.querySelector('.lr-search__input')"), f"no search box on {url}"
    browser.evaluate("document.querySelector('.lr-search__input').focus()")
    browser.call("Input.insertText", text=query)
    deadline = time.monotonic() + 15
    state = None
    while time.monotonic() < deadline:
        state = browser.evaluate("""(() => {
          const panel = document.querySelector('.lr-search__results');
          const meta = panel.querySelector('.lr-search__meta');
          return {shown: !panel.hidden, meta: meta ? meta.textContent : '',
                  links: [...panel.querySelectorAll('a.lr-search__hit')].map(a => a.href),
                  titles: [...panel.querySelectorAll('.lr-search__title')].map(t => t.textContent)};
        })()""")
        if state["shown"] and state["meta"]:
            break
        time.sleep(0.1)
    _record(visit, browser.drain())
    assert state and state["shown"], f"the search panel never showed on {url}"
    found = re.match(r"(\d+) results?", state["meta"])
    return (int(found[1]) if found else 0), state["links"], state["titles"]


def browse(site: Path, executable: str) -> Browsed:
    """Open every page of the built ``site`` over file:// in Chromium, then search from two of them."""
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")  # 404.html is for a web server
    browser = Browser(executable)
    try:
        visits = []
        for page in pages:
            visit = Visit(page.relative_to(site).as_posix())
            events = browser.open(page.as_uri())
            seen = browser.evaluate(INSPECT)
            _record(visit, events + browser.drain())
            visit.formulas, visit.unrendered = seen["formulas"], seen["unrendered"]
            visit.raw_tex = sorted({m[0] for m in RAW_TEX.finditer(seen["text"])})
            visit.figures = len(seen["figures"])
            for figure in seen["figures"]:
                if figure["link"] != figure["src"]:
                    visit.unlinked_figures.append(figure["src"])
                if not figure["loaded"]:
                    visit.broken_figures.append(figure["src"])
            visit.wide_code = seen["wide"]
            visits.append(visit)
        result = Browsed(site, visits)
        top, nested = Visit("index.html (searching)"), Visit("suites/reversal.html (searching)")
        result.hits, result.hit_links, result.hit_titles = _search(browser, (site / top.page.split()[0]).as_uri(),
                                                                   QUERY, top)
        result.nested_hits, links, _ = _search(browser, (site / nested.page.split()[0]).as_uri(), QUERY, nested)
        result.hit_links += links
        result.searching = [top, nested]
    finally:
        browser.close()
    return result


@pytest.fixture(scope="module")
def browsed(site: Path) -> Browsed:
    result = browse(site, CHROMIUM)
    print(f"\n[docs site] {result.summary()}")
    return result


def _per_page(browsed: Browsed, name: str) -> dict[str, list[str]]:
    return {v.page: getattr(v, name) for v in browsed.visits + browsed.searching if getattr(v, name)}


def test_every_page_was_opened(browsed):
    assert len(browsed.visits) >= 15
    assert {"index.html", "theory.html", "reference/api.html", "notebooks.html"} <= {v.page for v in browsed.visits}


def test_nothing_is_requested_from_outside(browsed):
    assert not _per_page(browsed, "external"), "requests that leave the disk"


def test_every_local_file_loads(browsed):
    assert not _per_page(browsed, "failed"), "files the pages ask for that do not load"


def test_no_script_error_and_no_console_error(browsed):
    assert not _per_page(browsed, "errors"), "script errors"
    assert not _per_page(browsed, "console"), "console errors"


def test_formulas_are_mathml_and_none_is_left_as_tex(browsed):
    theory = next(v for v in browsed.visits if v.page == "theory.html")
    assert theory.formulas > 200, f"theory.html has only {theory.formulas} <math> elements"
    assert sum(v.formulas for v in browsed.visits) > theory.formulas  # the suite pages have formulas too
    assert not _per_page(browsed, "raw_tex"), "TeX shown as text"
    not_laid_out = {v.page: v.unrendered for v in browsed.visits if v.unrendered}
    assert not not_laid_out, f"<math> elements the browser did not lay out: {not_laid_out}"


def test_search_finds_sections_from_file_urls(browsed):
    assert browsed.hits > 0, f"searching {QUERY!r} from file:// found nothing"
    assert browsed.nested_hits == browsed.hits  # the same from a page one folder down
    assert any("kernel_distance" in link for link in browsed.hit_links), browsed.hit_titles[:10]
    for link in browsed.hit_links:
        parts = urlsplit(link)
        assert parts.scheme == "file" and Path(unquote(parts.path)).is_file(), f"a search hit leads nowhere: {link}"
        anchor = unquote(parts.fragment)
        if anchor:
            assert f'id="{anchor}"' in Path(unquote(parts.path)).read_text(encoding="utf-8"), link


def test_figures_open_full_size(browsed):
    assert sum(v.figures for v in browsed.visits if v.page.startswith("suites/")) >= 10
    assert not _per_page(browsed, "unlinked_figures"), "figures not wrapped in a link to their full-size file"
    assert not _per_page(browsed, "broken_figures"), "figures that do not load"
    gallery = (browsed.site / "notebooks.html").read_text(encoding="utf-8")
    images = sorted(p.name for p in (browsed.site / "img").glob("*.png"))
    assert images and all(f'src="img/{name}"' in gallery for name in images), "the Notebooks page gallery"


def test_code_blocks_fit_the_column(browsed):
    assert not _per_page(browsed, "wide_code"), "code blocks wider than the content column"
