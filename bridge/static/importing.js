// Follows /imports/status for the waiting page and moves on by itself.
(function () {
  var el = document.getElementById("importing");
  if (!el) return;
  var id = el.getAttribute("data-patient-id");
  var here = el.getAttribute("data-here");
  var text = document.getElementById("status-text");
  var delay = 400;
  function poll() {
    fetch("/imports/status?patient_id=" + encodeURIComponent(id), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.state === "done" && s.patient_url) { window.location.replace(s.patient_url); return; }
        if (s.state === "failed") { window.location.replace(here + "&check=1"); return; }
        if (s.cause === "cliniko_unavailable" || s.cause === "cliniko_rate_limited") {
          text.textContent = "Cliniko is busy. pmsbridge keeps trying by itself; this page moves on when it is done.";
        }
        delay = Math.min(delay * 1.5, 3000);
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 200);
})();
