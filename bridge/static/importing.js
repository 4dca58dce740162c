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
  function busy() {
    if (busyShown) return;
    busyShown = true;
    el.className = el.className.replace(/\binfo\b/, "warn");
    if (heading) heading.textContent = "Cliniko is busy — still trying";
    if (explain) explain.textContent = "Cliniko is not answering right now, or asked us to slow down. pmsbridge keeps trying by itself; you do not need to do anything.";
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
        if (s.cause === "cliniko_unavailable" || s.cause === "cliniko_rate_limited") {
          busy();
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
