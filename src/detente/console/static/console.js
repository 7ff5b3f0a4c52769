// Détente console: progressive enhancement, our own code (no library).
// Without this script every page works with links and forms; with it:
//  - live updates: server-sent events from /console/events; when a part the
//    page shows moved, the page is fetched again and its live regions
//    ([data-live-region] with an id) are replaced in place, keeping focus;
//  - deadline countdowns tick, in the page's language (Intl.RelativeTimeFormat).
(function () {
  "use strict";
  var body = document.body;
  var base = body.getAttribute("data-base") || "";
  var lang = body.getAttribute("data-lang") || "en";
  var loadedAt = Date.now();
  window.detenteConsole = { updates: 0, loadedAt: loadedAt };

  function parts() {
    try { return JSON.parse(body.getAttribute("data-parts") || "{}"); } catch (e) { return {}; }
  }

  // -- countdowns --------------------------------------------------------------
  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(lang, { numeric: "always" }) : null;
  function relative(ms) {
    var s = Math.round(ms / 1000), a = Math.abs(s);
    if (a < 90) return rtf.format(s, "second");
    if (a < 90 * 60) return rtf.format(Math.round(s / 60), "minute");
    if (a < 36 * 3600) return rtf.format(Math.round(s / 3600), "hour");
    return rtf.format(Math.round(s / 86400), "day");
  }
  function tick() {
    if (!rtf) return;
    var elapsed = Date.now() - loadedAt;
    var nodes = document.querySelectorAll("time.countdown[data-due][data-now]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var left = Number(el.getAttribute("data-due")) - Number(el.getAttribute("data-now")) - elapsed;
      el.textContent = relative(left);
      el.classList.toggle("late", left <= 0);
    }
  }
  setInterval(tick, 15000);

  // -- live updates ---------------------------------------------------------------
  var wanted = (body.getAttribute("data-live") || "").split(/\s+/).filter(Boolean);
  if (!wanted.length || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var shown = parts();
  var busy = false, again = false;
  var status = document.getElementById("live-status");

  function focusKey(el) {
    if (!el || el === document.body) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    var href = el.getAttribute && el.getAttribute("href");
    if (href) return el.tagName.toLowerCase() + '[href="' + CSS.escape(href) + '"]';
    return null;
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (r) {
        if (r.redirected || r.status === 401) { window.location.reload(); throw new Error("signed out"); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var key = focusKey(document.activeElement);
        var regions = document.querySelectorAll("[data-live-region][id]");
        for (var i = 0; i < regions.length; i++) {
          var fresh = doc.getElementById(regions[i].id);
          if (fresh) regions[i].innerHTML = fresh.innerHTML;
        }
        var newBody = doc.body;
        if (newBody) {
          body.setAttribute("data-parts", newBody.getAttribute("data-parts") || "{}");
          body.setAttribute("data-now", newBody.getAttribute("data-now") || "");
        }
        if (doc.title) document.title = doc.title;
        if (key) { var back = document.querySelector(key); if (back) back.focus(); }
        loadedAt = Date.now();
        window.detenteConsole.updates += 1;
        if (status) status.textContent = status.getAttribute("data-updated") || "";
        tick();
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function changed(next) {
    for (var i = 0; i < wanted.length; i++) {
      if (next[wanted[i]] !== shown[wanted[i]]) return true;
    }
    return false;
  }

  var source = new EventSource(base + "/events");
  source.addEventListener("change", function (event) {
    var next;
    try { next = JSON.parse(event.data); } catch (e) { return; }
    if (changed(next)) { shown = next; refresh(); }
  });
})();
