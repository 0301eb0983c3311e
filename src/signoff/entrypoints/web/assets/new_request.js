// The New request form's dry run, as the person types. Progressive enhancement: without
// this the form's Check button asks the server the same question. A pause in typing
// (350 ms) fetches /new/preview with the form's fields (never its CSRF token) and puts
// the answer in the dry-run box; an answer that arrives after a newer question is
// dropped. The hint under Parameters follows the type (the form's data-argv-type,
// command.run, takes one argument per line).
(function () {
  "use strict";
  var form = document.getElementById("new-request");
  var box = document.getElementById("dry-run");
  if (!form || !box || !window.fetch || !window.URLSearchParams || !window.DOMParser) return;
  var FIELDS = ["type", "target", "params", "reason", "ticket", "risk", "links", "labels"];
  var LONGEST = 7000; // characters of query string; a longer draft is checked with Check
  var timer = null, asked = "", latest = 0;

  function query() {
    var q = new URLSearchParams();
    FIELDS.forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field) q.set(name, field.value);
    });
    return q.toString();
  }

  function show(fresh) {
    box.className = fresh.className;
    while (box.firstChild) box.removeChild(box.firstChild);
    Array.prototype.forEach.call(fresh.childNodes, function (node) {
      box.appendChild(document.importNode(node, true));
    });
  }

  function note(text) {
    var fresh = document.createElement("section");
    fresh.className = "dry-run";
    var p = document.createElement("p");
    p.className = "dry-headline";
    p.textContent = text;
    fresh.appendChild(p);
    show(fresh);
  }

  function check() {
    var q = query();
    if (q === asked) return;
    asked = q;
    var mine = ++latest;
    if (q.length > LONGEST) {
      note("This is too long to check as you type: press Check.");
      return;
    }
    box.setAttribute("aria-busy", "true");
    fetch("/new/preview?" + q, { credentials: "same-origin", headers: { "X-Signoff-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null || mine !== latest) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("dry-run");
        if (fresh) show(fresh);
      })
      .catch(function () {})
      .then(function () { if (mine === latest) box.removeAttribute("aria-busy"); });
  }

  function paramsHint() {
    var type = form.elements.namedItem("type");
    var argv = !!type && type.value.trim() === form.getAttribute("data-argv-type");
    form.querySelectorAll("[data-params]").forEach(function (hint) {
      hint.hidden = (hint.getAttribute("data-params") === "argv") !== argv;
    });
  }

  function later() {
    paramsHint();
    clearTimeout(timer);
    timer = setTimeout(check, 350);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
  asked = query(); // the page came with the dry run of what it shows
})();
