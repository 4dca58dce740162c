package bridge

import (
	"errors"
	"net/http"
	"strings"
)

// Caps on request bodies of form posts. Routes that anyone may call
// without logging in, where nothing long is typed, get the small cap; the
// webhook and the admin API limit their own JSON bodies.
const (
	smallFormBody = 64 << 10
	formBody      = 256 << 10
)

// limitBodies caps the body of every request that is not the webhook or
// the admin API (parseForm turns going over into a 413 page).
func (s *Server) limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.URL.Path != "/webhooks/programmes" && !strings.HasPrefix(r.URL.Path, "/admin/api/") {
			limit := int64(formBody)
			switch r.URL.Path {
			case "/login", "/access", "/admin/login", "/logout", "/admin/logout":
				limit = smallFormBody
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}

// parseForm reads a posted form; on failure it has answered: 413 when the
// body is over its cap, 400 when it cannot be read (see answerFor).
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	err := r.ParseForm()
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) {
		err = &badRequest{"The form could not be read."}
	}
	s.Error(w, r, err)
	return false
}
