package bridge

import (
	"errors"
	"net/http"

	"github.com/physitrack/pmsbridge/store"
)

// countAttempt counts a login or programme opening (kind login, access or
// admin) by what became of it: ok and wrong were checked against the
// secret, locked was refused unchecked by a lock-out, busy unchecked
// because the process was checking as many passwords as it may at once. Errors of our own
// (Redis down) are not attempts anyone made.
func (s *Server) countAttempt(kind string, err error) {
	outcome := ""
	switch {
	case err == nil:
		outcome = "ok"
	case errors.Is(err, store.ErrLocked):
		outcome = "locked"
	case errors.Is(err, store.ErrBadCredentials):
		outcome = "wrong"
	case errors.Is(err, store.ErrBusy):
		outcome = "busy"
	default:
		return
	}
	s.metrics.attempts.WithLabelValues(kind, outcome).Inc()
}

// tooBusy is the quick answer to a login that found every password-check
// slot of the process taken: try again in a moment (the attempt was not
// checked and does not count towards a lock-out).
func (s *Server) tooBusy(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "2")
	s.message(w, r, http.StatusServiceUnavailable, "Busy", message{Tone: "warn", Heading: "pmsbridge is busy for a moment",
		Paragraphs: []string{"Many people are logging in right now. Your password was not checked: please try again in a few seconds."},
		Links:      []link{{Text: "Back to the login page", URL: "/login"}}})
}
