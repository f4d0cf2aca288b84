// dronehook inspector: live rows from /stream (Server-Sent Events). Rows are built
// with textContent, so nothing received is ever parsed as HTML; what is swapped in
// whole (the board, an event's runs) is the server's own escaped page.
(function () {
  "use strict";
  var events = document.getElementById("events");
  var refusals = document.getElementById("refusals");
  // Rows link to their detail: the whole row, not only its link.
  document.addEventListener("click", function (e) {
    var row = e.target.closest && e.target.closest("tr[data-href]");
    if (row && !e.target.closest("a, button, form")) {
      window.location.href = row.getAttribute("data-href");
    }
  });
  // Only the first page of the list is live (an older page stays as it is).
  var older = /[?&]before=/.test(window.location.search);
  var builds = document.getElementById("builds");
  // An event's page follows its handler runs.
  var detail = /^\/events\/(\d+)$/.exec(window.location.pathname);
  var runs = detail && document.getElementById("runs");
  if ((!events || older) && !refusals && !builds && !runs) { return; }
  function cell(tr, cls, text) {
    var td = document.createElement("td");
    td.className = cls;
    td.textContent = text == null ? "" : String(text);
    tr.appendChild(td);
    return td;
  }
  function prepend(table, tr) {
    var body = table.tBodies[0];
    body.insertBefore(tr, body.firstChild);
    tr.classList.add("fresh");
    var empty = document.querySelector("p.empty");
    if (empty) { empty.remove(); }
  }
  var source = new EventSource("/stream" + (events && !older ? window.location.search : ""));
  // Whether the stream is connected, for people (the stylesheet can show it) and for
  // tests, which wait for it before sending. EventSource reconnects by itself.
  source.onopen = function () { document.documentElement.setAttribute("data-live", "open"); };
  source.onerror = function () { document.documentElement.setAttribute("data-live", "closed"); };
  source.addEventListener("delivery", function (m) {
    if (!events || older) { return; }
    var d = JSON.parse(m.data);
    if (d.id != null && events.querySelector('tr.event[data-id="' + d.id + '"]')) { return; }
    var tr = document.createElement("tr");
    tr.className = "event";
    cell(tr, "received", d.received);
    var ev = cell(tr, "event", "");
    if (d.id != null) {
      tr.setAttribute("data-id", String(d.id));
      tr.setAttribute("data-href", "/events/" + d.id);
      var a = document.createElement("a");
      a.href = "/events/" + d.id;
      a.textContent = d.event;
      ev.appendChild(a);
    } else {
      ev.textContent = d.event;
    }
    cell(tr, "repo", d.repo);
    cell(tr, "build", d.build);
    cell(tr, "status", d.status);
    cell(tr, "runs", d.runs);
    prepend(events, tr);
  });
  // The board: a new build event re-reads the board (the server renders it, escaped)
  // and swaps its rows in.
  var pending = false;
  source.addEventListener("delivery", function (m) {
    if (!builds || pending) { return; }
    var d = JSON.parse(m.data);
    if (String(d.event).indexOf("build:") !== 0) { return; }
    pending = true;
    window.setTimeout(function () {
      fetch("/builds", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.querySelector("#builds tbody");
          if (fresh) { builds.replaceChild(document.adoptNode(fresh), builds.tBodies[0]); }
        })
        .catch(function () {})
        .then(function () { pending = false; });
    }, 300);
  });
  // A run ended: the list's row says so, and the event's page re-reads its runs (the
  // server renders them, escaped) and swaps them in.
  source.addEventListener("runs", function (m) {
    var r = JSON.parse(m.data);
    if (events && !older) {
      var td = events.querySelector('tr.event[data-id="' + Number(r.id) + '"] td.runs');
      if (td) { td.textContent = String(r.runs); }
    }
    if (runs && String(r.id) === detail[1]) {
      fetch(window.location.pathname, { credentials: "same-origin" })
        .then(function (res) { return res.ok ? res.text() : Promise.reject(res.status); })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.querySelector("#runs tbody");
          if (fresh) { runs.replaceChild(document.adoptNode(fresh), runs.tBodies[0]); }
        })
        .catch(function () {});
    }
  });
  source.addEventListener("refusal", function (m) {
    if (!refusals) { return; }
    var r = JSON.parse(m.data);
    var tr = document.createElement("tr");
    tr.className = "refusal";
    cell(tr, "time", r.time);
    cell(tr, "peer", r.peer);
    cell(tr, "status", r.status);
    cell(tr, "code", r.code);
    cell(tr, "key-id", r.key_id);
    cell(tr, "event", r.event);
    cell(tr, "skew", r.skew);
    cell(tr, "reason", r.reason);
    prepend(refusals, tr);
  });
})();
