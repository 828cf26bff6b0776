// caddy-itp session page: adds new results to the table without a reload by
// polling the session's results with ?since=ID. The page works without it.
(function () {
  "use strict";
  var body = document.getElementById("results");
  if (!body || !window.fetch) { return; }
  var live = document.getElementById("live");
  var since = parseInt(body.dataset.since || "0", 10) || 0;
  var check = body.dataset.check || "";
  var status = body.dataset.status || "";
  var interval = 2000;
  var failures = 0;
  var added = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }
  function pretty(v) {
    try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
  }
  function cell(tr, child) {
    var td = el("td");
    if (typeof child === "string") { td.textContent = child; } else if (child) { td.appendChild(child); }
    tr.appendChild(td);
    return td;
  }
  function row(r) {
    var tr = el("tr", r.status + " new");
    tr.dataset.id = String(r.id);
    cell(tr, String(r.id));
    var t = el("time", null, r.time.replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, ""));
    t.setAttribute("datetime", r.time);
    cell(tr, t);
    cell(tr, el("span", "badge " + r.status, r.status));
    cell(tr, r.check);
    cell(tr, r.source + " \u2192 " + r.target);
    cell(tr, el("code", null, r.method + " " + r.uri));
    var msg = cell(tr, r.message || "");
    var has = r.expected !== undefined || r.actual !== undefined || r.forwarded_uri || r.client_cert;
    if (has) {
      var d = el("details");
      d.appendChild(el("summary", null, "expected / actual"));
      var dl = el("dl", "detail");
      function item(name, node) {
        dl.appendChild(el("dt", null, name));
        var dd = el("dd");
        dd.appendChild(node);
        dl.appendChild(dd);
      }
      if (r.expected !== undefined) { item("Expected", el("pre", null, pretty(r.expected))); }
      if (r.actual !== undefined) { item("Actual", el("pre", null, pretty(r.actual))); }
      if (r.forwarded_uri) { item("Forwarded to", el("code", null, r.forwarded_uri)); }
      if (r.client_cert) {
        item("Client certificate", document.createTextNode(
          r.client_cert.subject + ", serial " + r.client_cert.serial + ", issued by " + r.client_cert.issuer));
      }
      d.appendChild(dl);
      msg.appendChild(document.createTextNode("\n"));
      msg.appendChild(d);
    }
    return tr;
  }
  function say(text) {
    if (live) { live.textContent = text; }
  }
  function poll() {
    var q = "?since=" + encodeURIComponent(since);
    if (check) { q += "&check=" + encodeURIComponent(check); }
    if (status) { q += "&status=" + encodeURIComponent(status); }
    fetch(body.dataset.url + q, { headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (resp) {
        if (resp.status === 404) { say("This session no longer exists."); throw null; }
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.json();
      })
      .then(function (list) {
        failures = 0;
        if (list.length > 0) {
          var empty = body.querySelector("tr.empty");
          if (empty) { empty.remove(); }
          for (var i = 0; i < list.length; i++) {
            var r = list[i];
            if (r.id > since) { since = r.id; }
            body.insertBefore(row(r), body.firstChild);
            added++;
          }
        }
        say("Live: checking for new results every " + interval / 1000 + " s" +
          (added ? "; " + added + " new since this page was loaded." : "."));
        schedule();
      })
      .catch(function (err) {
        if (err === null) { return; }
        failures++;
        say("Live updates paused: the platform did not answer (" + err.message + "); retrying.");
        schedule();
      });
  }
  function schedule() {
    setTimeout(poll, failures ? Math.min(30000, interval * (failures + 1)) : interval);
  }
  schedule();
})();
