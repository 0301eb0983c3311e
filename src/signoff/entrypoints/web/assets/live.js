// Progressive enhancement: the page works without this. When the server says something
// changed (server-sent events), the parts marked data-live-part are fetched again and
// swapped in place; a comment being typed is kept.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.EventSource || !window.fetch) return;
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Signoff-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var typed = document.getElementById("comment");
        var kept = typed ? typed.value : null;
        document.querySelectorAll("[data-live-part]").forEach(function (node) {
          var fresh = doc.getElementById(node.id);
          if (fresh) node.replaceWith(document.importNode(fresh, true));
        });
        var now = document.getElementById("comment");
        if (now && kept) now.value = kept;
        var counts = doc.querySelector("header.top nav");
        var mine = document.querySelector("header.top nav");
        if (counts && mine) mine.replaceWith(document.importNode(counts, true));
        document.documentElement.dataset.refreshed = String(Date.now());
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var source = new EventSource(main.dataset.live);
  source.addEventListener("changed", refresh);
})();
