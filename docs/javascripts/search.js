// The site's search box. It works from file:// as well as from a server: the index is a script,
// search/index.js (written by docs/offline_search.py at build time), which this file loads with a <script> tag
// the first time the box is used, then searches in the page itself (no worker, no fetch).
(function () {
  "use strict";

  var here = document.currentScript && document.currentScript.src;
  if (!here) return;
  var root = new URL("..", here); // this file is javascripts/search.js under the site root
  var MAX_SHOWN = 30;
  var loading = null;

  function loadIndex() {
    if (!loading) {
      loading = new Promise(function (resolve, reject) {
        if (window.lazyrichSearchIndex) return resolve(window.lazyrichSearchIndex);
        var tag = document.createElement("script");
        tag.src = new URL("search/index.js", root).href;
        tag.onload = function () { resolve(window.lazyrichSearchIndex || []); };
        tag.onerror = function () { reject(new Error("the search index search/index.js is missing")); };
        document.head.appendChild(tag);
      }).then(function (entries) {
        entries.forEach(function (e) {
          e.lt = (e.p + " " + e.t).toLowerCase();
          e.lx = e.x.toLowerCase();
        });
        return entries;
      });
    }
    return loading;
  }

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  function count(haystack, needle) {
    var n = 0;
    for (var i = haystack.indexOf(needle); i !== -1 && n < 5; i = haystack.indexOf(needle, i + needle.length)) n++;
    return n;
  }

  // Every term must occur in the section's titles or text; titles weigh more, and so does the whole phrase.
  function search(entries, query) {
    var phrase = query.trim().toLowerCase();
    var terms = phrase.split(/\s+/).filter(Boolean);
    if (!terms.length) return [];
    var hits = [];
    entries.forEach(function (e, order) {
      var score = 0;
      for (var i = 0; i < terms.length; i++) {
        var inTitle = e.lt.indexOf(terms[i]) !== -1;
        var inText = count(e.lx, terms[i]);
        if (!inTitle && !inText) return;
        score += (inTitle ? 10 : 0) + inText;
      }
      if (terms.length > 1) score += (e.lt.indexOf(phrase) !== -1 ? 20 : 0) + (e.lx.indexOf(phrase) !== -1 ? 5 : 0);
      hits.push({ entry: e, score: score, order: order });
    });
    hits.sort(function (a, b) { return b.score - a.score || a.order - b.order; });
    return hits.map(function (h) { return h.entry; });
  }

  function snippet(entry, terms) {
    var at = -1;
    for (var i = 0; i < terms.length && at === -1; i++) at = entry.lx.indexOf(terms[i]);
    var start = Math.max(0, at - 60);
    var text = (start > 0 ? "… " : "") + entry.x.slice(start, start + 200) + (start + 200 < entry.x.length ? " …" : "");
    return mark(escapeHtml(text), terms);
  }

  function mark(html, terms) {
    var pattern = terms.map(function (t) { return escapeRegExp(escapeHtml(t)); }).join("|");
    return pattern ? html.replace(new RegExp("(" + pattern + ")", "gi"), "<mark>$1</mark>") : html;
  }

  function build() {
    var header = document.querySelector(".md-header__inner");
    if (!header) return;
    var form = document.createElement("form");
    form.className = "lr-search";
    form.setAttribute("role", "search");
    form.innerHTML =
      '<input type="search" class="lr-search__input" name="q" placeholder="Search" ' +
      'aria-label="Search the documentation" autocomplete="off" spellcheck="false">' +
      '<div class="lr-search__results" hidden></div>';
    header.insertBefore(form, header.querySelector(".md-header__source"));
    var input = form.querySelector("input");
    var panel = form.querySelector(".lr-search__results");
    var first = null;

    function show(query) {
      loadIndex().then(function (entries) {
        if (input.value !== query) return; // a newer query is on its way
        var terms = query.trim().toLowerCase().split(/\s+/).filter(Boolean);
        if (!terms.length) { panel.hidden = true; return; }
        var hits = search(entries, query);
        first = hits.length ? new URL(hits[0].u, root).href : null;
        var items = hits.slice(0, MAX_SHOWN).map(function (e) {
          var title = e.t === e.p ? escapeHtml(e.p) : escapeHtml(e.p) + " › " + escapeHtml(e.t);
          return '<li><a class="lr-search__hit" href="' + escapeHtml(new URL(e.u, root).href) + '">' +
            '<span class="lr-search__title">' + title + "</span>" +
            '<span class="lr-search__snippet">' + snippet(e, terms) + "</span></a></li>";
        });
        var meta = hits.length === 0 ? "No results" : hits.length === 1 ? "1 result" :
          hits.length + " results" + (hits.length > MAX_SHOWN ? " (best " + MAX_SHOWN + " shown)" : "");
        panel.innerHTML = '<p class="lr-search__meta">' + meta + "</p><ol>" + items.join("") + "</ol>";
        panel.hidden = false;
      }, function (error) {
        panel.innerHTML = '<p class="lr-search__meta">Search is unavailable: ' + escapeHtml(error.message) + "</p>";
        panel.hidden = false;
      });
    }

    input.addEventListener("focus", function () { loadIndex().catch(function () {}); if (input.value) show(input.value); });
    input.addEventListener("input", function () { show(input.value); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (first) window.location.href = first;
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { panel.hidden = true; input.blur(); }
    });
    document.addEventListener("click", function (event) {
      if (!form.contains(event.target)) panel.hidden = true;
    });
    document.addEventListener("keydown", function (event) {
      var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
      if (!typing && (event.key === "/" || event.key === "s") && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        input.focus();
      }
    });
  }

  build();
})();
