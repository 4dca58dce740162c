// Follows /imports/status for the waiting page and moves on by itself.
(function () {
  var el = document.getElementById("importing");
  if (!el) return;
  var id = el.getAttribute("data-patient-id");
  var here = el.getAttribute("data-here");
  var heading = el.querySelector("h1");
  var explain = document.getElementById("explain");
  var started = Date.now();
  var delay = 400;
  var busyShown = /\bwarn\b/.test(el.className); // the server already says so
  // What to say while the import is retried with a given cause, from the
  // server's cause table: {"cliniko_unavailable": {"heading", "explain"}}.
  var waiting = {};
  try { waiting = JSON.parse(el.getAttribute("data-waiting") || "{}"); } catch (e) { waiting = {}; }
  function busy(words) {
    if (busyShown) return;
    busyShown = true;
    el.className = el.className.replace(/\binfo\b/, "warn");
    if (heading) heading.textContent = words.heading;
    if (explain) explain.textContent = words.explain;
  }
  function slow() {
    if (busyShown) return;
    if (explain) explain.textContent = "This is taking longer than usual. pmsbridge keeps trying; you do not need to do anything.";
  }
  function poll() {
    fetch("/imports/status?patient_id=" + encodeURIComponent(id), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        // Not JSON (e.g. the session ended and we were sent to the login
        // page): let the server decide what to show.
        if (r.redirected || (r.headers.get("Content-Type") || "").indexOf("json") < 0) {
          window.location.replace(here + "&check=1");
          return null;
        }
        return r.json();
      })
      .then(function (s) {
        if (!s) return;
        if (s.state === "done" && s.patient_url) { window.location.replace(s.patient_url); return; }
        if (s.state === "failed") { window.location.replace(here + "&check=1"); return; }
        if (s.cause && waiting.hasOwnProperty(s.cause)) {
          busy(waiting[s.cause]);
        } else if (Date.now() - started > 10000) {
          slow();
        }
        delay = Math.min(delay * 1.5, 3000);
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 200);
})();
