package bridge

import (
	"errors"

	"github.com/physitrack/pmsbridge/store"
)

// countAttempt counts a login or programme opening (kind login, access or
// admin) by what became of it: ok and wrong were checked against the
// secret, locked was refused unchecked by a lock-out. Errors of our own
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
	default:
		return
	}
	s.metrics.attempts.WithLabelValues(kind, outcome).Inc()
}
