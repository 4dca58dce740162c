// The patient page, made livelier where a browser runs scripts (it works
// without: reload to see new states; the exercise picker is then a plain
// list grouped by body region).
//
// 1. The programme rows update by themselves: while a PDF (or a message)
//    is being sent, or has failed for a reason someone else's key can fix,
//    the page asks /api/patients/{id} how things stand, and when that
//    changes it fetches the page again and swaps in the new rows.
// 2. The exercise picker filters as you type.
(function () {
  "use strict";

  var list = document.getElementById("programme-list");
  if (list && window.fetch && window.DOMParser) live(list);
  var picker = document.querySelector("fieldset.exlist");
  if (picker) filter(picker);

  function live(list) {
    var id = list.getAttribute("data-patient");
    // Failures that the patient's owner or the assigner can fix by saving
    // a Cliniko key: the job then runs again by itself.
    var fixable = { no_cliniko_key: 1, cliniko_unauthorized: 1, cliniko_forbidden: 1, cliniko_not_found: 1 };
    var last = null;

    function shown() {
      // The states the rows show now: "programme:version" -> state.
      var m = {};
      list.querySelectorAll("[data-pdf]").forEach(function (el) { m[el.getAttribute("data-pdf")] = el.getAttribute("data-state"); });
      return m;
    }

    function tick() {
      if (document.hidden) { setTimeout(tick, 5000); return; }
      fetch("/api/patients/" + encodeURIComponent(id), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok || (r.headers.get("Content-Type") || "").indexOf("json") < 0) return null;
          return r.json();
        })
        .then(function (p) {
          if (!p) return; // logged out or gone: stop, the page stays as it is
          var sig = "", pending = false, waiting = false, differs = false, now = shown();
          (p.programmes || []).forEach(function (v) {
            var st = v.pdf || {};
            sig += v.id + ":" + v.version + ":" + st.state + ":" + st.cause + ";";
            var key = v.id + ":" + v.version;
            if (now[key] !== undefined && now[key] !== st.state) differs = true;
            if (now[key] === undefined) differs = true;
            if (st.state === "pending") pending = true;
            if (st.state === "failed" && fixable[st.cause]) waiting = true;
            (v.code_delivery || []).forEach(function (m) {
              sig += m.channel + ":" + m.state + ";";
              if (m.state === "pending") pending = true;
            });
          });
          if ((last === null && differs) || (last !== null && sig !== last)) swap();
          last = sig;
          if (pending) setTimeout(tick, 1500);
          else if (waiting) setTimeout(tick, 4000);
        })
        .catch(function () { setTimeout(tick, 5000); });
    }

    function swap() {
      fetch(location.pathname, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("programme-list");
          if (!fresh) return;
          var open = {};
          list.querySelectorAll("details[open]").forEach(function (d) { open[d.closest("[id]").id + "/" + d.className] = true; });
          list.innerHTML = fresh.innerHTML;
          list.querySelectorAll("details").forEach(function (d) { if (open[d.closest("[id]").id + "/" + d.className]) d.open = true; });
        })
        .catch(function () {});
    }

    tick();
  }

  function filter(fs) {
    var box = fs.querySelector(".filter");
    var input = fs.querySelector("#exfilter");
    var none = fs.querySelector(".nomatch");
    if (!box || !input) return;
    box.hidden = false;
    function norm(s) {
      s = (s || "").toLowerCase();
      return s.normalize ? s.normalize("NFD").replace(/[\u0300-\u036f]/g, "") : s;
    }
    function apply() {
      var q = norm(input.value.trim()), any = false;
      fs.querySelectorAll("[data-group]").forEach(function (g) {
        var some = false;
        g.querySelectorAll(".ex").forEach(function (ex) {
          var box = ex.querySelector("input[type=checkbox]");
          var show = !q || norm(ex.getAttribute("data-name")).indexOf(q) >= 0 || (box && box.checked);
          ex.hidden = !show;
          if (show) some = true;
        });
        g.hidden = !some;
        if (some) any = true;
      });
      if (none) none.hidden = any;
    }
    input.addEventListener("input", apply);
    input.addEventListener("keydown", function (e) { if (e.key === "Enter") e.preventDefault(); });
  }
})();
