package bridge

import (
	"net/http"
	"time"
)

// clinikoClick is GET /cliniko_patient_import, the Cliniko button, for a
// click with a session cookie on a valid patient number: it goes the fast
// way first (flows.OpenLinked), which answers a linked patient in one Redis
// round trip instead of the session middleware's two and Open's two or
// three. What the fast way leaves open (not linked: the import; no key)
// goes on to clinikoImport with the practitioner it found, as if
// withSession had found them; no practitioner (the session is unknown or
// expired, or theirs is inactive) is answered as withSession answers it.
// A click without a cookie, or with a link that is not valid, goes the
// ordinary way.
func (s *Server) clinikoClick(ordinary http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now() // the latency metric measures real time
		c, err := r.Cookie(SessionCookie)
		cid, problem := clinikoPatientID(r.URL.Query())
		if err != nil || c.Value == "" || problem != "" {
			ordinary.ServeHTTP(w, r)
			return
		}
		lc, err := s.flows.OpenLinked(r.Context(), c.Value, cid)
		if lc.PatientID != "" {
			s.metrics.clickLatency.WithLabelValues("linked").Observe(time.Since(start).Seconds())
			http.Redirect(w, r, "/patients/"+lc.PatientID, http.StatusSeeOther)
			return
		}
		if lc.Practitioner == nil {
			if err != nil {
				s.Error(w, r, err)
				return
			}
			s.clearSessionCookie(w)
			s.clinikoImport(w, r)
			return
		}
		r = r.WithContext(loggedIn(r.Context(), c.Value, lc.Practitioner, lc.ClinikoUser))
		if err != nil {
			s.Error(w, r, resumeAt(err, importPath(cid)))
			return
		}
		s.clinikoImport(w, r)
	}
}
