"""The report as one self-contained HTML page, and reading such a page back for ``--check``.

The page needs no network and no server: its style and its table sorting are inline, its figures are data URIs.
Every value on it sits in an element carrying ``data-n="<id>"`` (a table cell also ``data-v``, the number it sorts
by), and a ``<script type="application/json" id="lazyrich-numbers">`` block holds each id's text, raw value and
source. :func:`read` gives back what the page shows under each id, the embedded records and the sha256 of each
embedded figure.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from lazyrich.results.report.model import Number, Report, Section, Table

__all__ = ["NUMBERS_ID", "Page", "read", "render"]

NUMBERS_ID = "lazyrich-numbers"

STYLE = """
:root { --ink:#1d2329; --muted:#5b6670; --line:#d9dee3; --ok:#1e7b45; --bad:#b42318; --bg:#f7f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.6rem; margin: 0 0 4px; } h2 { margin-top: 2.2rem; border-bottom: 2px solid var(--line); }
h3 { margin-top: 1.6rem; font-size: 1.1rem; } .meta, .note, figcaption { color: var(--muted); font-size: .88rem; }
nav ol { columns: 2; padding-left: 1.2rem; } code, pre { font: .85rem/1.4 ui-monospace, Menlo, Consolas, monospace; }
pre { background: var(--bg); padding: 10px; overflow-x: auto; border: 1px solid var(--line); }
ul.verdicts { list-style: none; padding: 0; }
ul.verdicts li { margin: .35rem 0; padding-left: 1.6rem; text-indent: -1.6rem; }
.mark { display: inline-block; width: 1.6rem; text-indent: 0; font-weight: 700; }
.holds .mark { color: var(--ok); } .fails .mark { color: var(--bad); } .unjudged .mark { color: var(--muted); }
.fails { color: var(--bad); } .problems li { color: var(--bad); }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.scroll { overflow: auto; max-height: 36rem; border: 1px solid var(--line); }
table { border-collapse: collapse; font-size: .85rem; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { position: sticky; top: 0; background: #eef1f4; vertical-align: bottom; white-space: normal; }
td:first-child, th:first-child { text-align: left; } tbody tr:nth-child(even) { background: var(--bg); }
th button { all: unset; cursor: pointer; } th button::after { content: " ⇅"; color: var(--muted); }
th[aria-sort=ascending] button::after { content: " ▲"; } th[aria-sort=descending] button::after { content: " ▼"; }
dl.provenance { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
dl.provenance dt { color: var(--muted); } dl.provenance dd { margin: 0; font-family: ui-monospace, monospace; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(table => {
  const heads = [...table.tHead.rows[0].cells];
  heads.forEach((th, column) => {
    const button = document.createElement("button");
    button.textContent = th.textContent;
    th.textContent = "";
    th.appendChild(button);
    button.addEventListener("click", () => {
      const up = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(h => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      const key = row => {
        const cell = row.cells[column];
        const v = cell.dataset.v;
        return v === undefined || v === "" ? cell.textContent.trim() : parseFloat(v);
      };
      const rows = [...table.tBodies[0].rows];
      rows.sort((a, b) => {
        const x = key(a), y = key(b);
        const mixed = (typeof x) !== (typeof y);
        const order = mixed ? ((typeof x) === "number" ? -1 : 1)
                            : (typeof x === "number" ? x - y : String(x).localeCompare(String(y)));
        return up ? order : -order;
      });
      rows.forEach(row => table.tBodies[0].appendChild(row));
    });
  });
});
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _inline(text: str) -> str:
    """``text`` escaped, with Markdown `code` spans as <code> (the shown text is then :func:`model.plain`)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _n(number: Number, tag: str = "span", inline: bool = False, extra: str = "") -> str:
    body = _inline(number.text) if inline else _esc(number.text)
    return f'<{tag} data-n="{_esc(number.id)}"{extra}>{body}</{tag}>'


def _anchor(section_id: str) -> str:
    return "s-" + re.sub(r"[^A-Za-z0-9_-]+", "-", section_id).strip("-") if section_id != "." else "s-root"


def _table(table: Table, link_titles: bool = False) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in table.columns)
    rows = []
    for row in table.rows:
        cells = []
        for i, number in enumerate(row):
            sort = "" if number.sort is None else f' data-v="{float(number.sort)!r}"'
            text = _esc(number.text)
            if link_titles and i == 0:
                text = f'<a href="#{_anchor(str(number.value))}">{text}</a>'
            cells.append(f'<td data-n="{_esc(number.id)}"{sort}>{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    kind = ' class="sortable"' if table.sortable else ""
    note = f'<p class="note">{_esc(table.note)}</p>' if table.note else ""
    return (f"<h3>{_esc(table.title)}</h3><div class=\"scroll\"><table{kind}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>{note}")


def _section(section: Section) -> str:
    parts = [f'<section id="{_anchor(section.id)}"><h2>{_esc(section.title)}</h2>',
             f'<p class="meta">{_esc(section.kind)} folder <code>{_esc(section.path)}</code></p>']
    if section.verdicts:
        items = []
        for holds, number in section.verdicts:
            kind, mark = {True: ("holds", "✓"), False: ("fails", "✗"), None: ("unjudged", "–")}[holds]
            items.append(f'<li class="{kind}"><span class="mark">{mark}</span>{_n(number, inline=True)}</li>')
        parts.append("<h3>Verdicts</h3><ul class=\"verdicts\">" + "".join(items) + "</ul>")
    if section.problems:
        parts.append("<h3>Left out</h3><ul class=\"problems\">"
                     + "".join(f"<li>{_n(p)}</li>" for p in section.problems) + "</ul>")
    if section.figures:
        parts.append("<h3>Figures</h3>")
    for figure in section.figures:
        data = base64.b64encode(figure.data).decode()
        parts.append(f'<figure><img src="data:{figure.mime};base64,{data}" alt="{_esc(figure.name)}" '
                     f'data-figure="{_esc(figure.digest.id)}" loading="eager"><figcaption>{_esc(figure.name)} · '
                     f'sha256 {_n(figure.digest, "code")}</figcaption></figure>')
    parts += [_table(t) for t in section.tables]
    if section.texts:
        files = "".join(f"<h4>{_esc(name)}</h4>{_n(number, 'pre')}" for name, number in section.texts)
        parts.append(f"<details><summary>Config and theory notes ({len(section.texts)} files)</summary>{files}"
                     f"</details>")
    return "".join(parts) + "</section>"


def render(report: Report) -> str:
    """The page of ``report`` (see module docstring)."""
    sources: dict[str, int] = {}
    numbers = {}
    for ident, number in report.numbers().items():
        record = number.record()
        record["from"] = sources.setdefault(record["from"], len(sources))  # an index: sources repeat a lot
        numbers[ident] = record
    blob = json.dumps({"format": 1, "folder": report.folder, "sources": list(sources), "numbers": numbers},
                      ensure_ascii=False, allow_nan=False).replace("</", "<\\/")
    nav = "".join(f'<li><a href="#{_anchor(s.id)}">{_esc(s.title)}</a></li>' for s in report.sections)
    skipped = ("<h3>Left out (not finished, or failing verification)</h3><ul class=\"problems\">"
               + "".join(f"<li>{_n(n)}</li>" for n in report.skipped) + "</ul>") if report.skipped else ""
    provenance = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in report.provenance.items())
    body = [
        f"<header><h1>lazyrich report: {_esc(report.folder)}</h1><p class=\"meta\">{len(report.sections)} "
        f"studies · written {_esc(report.provenance.get('written', ''))} by lazyrich "
        f"{_esc(report.provenance.get('lazyrich', ''))}</p><nav><ol>{nav}</ol></nav></header><main>",
        "<section id=\"overview\"><h2>Overview</h2>",
        _table(report.overview, link_titles=True) if report.overview else "",
        skipped,
        "<h3>How the numbers were made</h3>" + "".join(f"<p>{_n(n)}</p>" for n in report.method),
        "</section>",
        *(_section(s) for s in report.sections),
        f"<section id=\"provenance\"><h2>Provenance</h2><p class=\"note\">Who wrote this page; everything else "
        f"on it is recomputed from the folder by <code>lazyrich report {_esc(report.folder)} --check</code>."
        f"</p><dl class=\"provenance\">{provenance}</dl></section></main>",
    ]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>lazyrich report: {_esc(report.folder)}</title><style>{STYLE}</style></head><body>"
            + "".join(body)
            + f'<script type="application/json" id="{NUMBERS_ID}">{blob}</script><script>{SCRIPT}</script>'
            + "</body></html>\n")


@dataclass
class Page:
    """What a report page holds: the text shown under each id, the embedded records, and the sha256 of each
    embedded figure by its digest id."""

    shown: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)


class _Reader(HTMLParser):
    VOID = {"img", "br", "meta", "link", "hr", "input", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page, self.depth, self.open, self.blob, self.in_blob = Page(), 0, [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("data-figure"):
            src = attrs.get("src", "")
            data = base64.b64decode(src.split(",", 1)[1]) if src.startswith("data:") and "," in src else b""
            self.page.figures[attrs["data-figure"]] = hashlib.sha256(data).hexdigest()
        if tag in self.VOID:
            return
        self.depth += 1
        if "data-n" in attrs:
            self.open.append((attrs["data-n"], self.depth, []))
        self.in_blob = tag == "script" and attrs.get("id") == NUMBERS_ID

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self.open and self.open[-1][1] == self.depth:
            ident, _, chunks = self.open.pop()
            self.page.shown[ident] = "".join(chunks)
        self.depth -= 1
        self.in_blob = False

    def handle_data(self, data):
        for _, _, chunks in self.open:
            chunks.append(data)
        if self.in_blob:
            self.blob.append(data)


def read(text: str) -> Page:
    """The values a report page shows and embeds (see :class:`Page`)."""
    reader = _Reader()
    reader.feed(text)
    reader.close()
    page = reader.page
    try:
        blob = json.loads("".join(reader.blob)) if reader.blob else {}
    except ValueError:
        blob = {}
    sources = blob.get("sources", [])
    for ident, record in blob.get("numbers", {}).items():
        index = record.get("from")
        known = isinstance(index, int) and 0 <= index < len(sources)
        page.records[ident] = {**record, "from": sources[index] if known else None}
    return page
