package bridge

import (
	"errors"
	"net/http"
)

// parseForm reads a posted form; on failure it has written the page: 413
// when the body is over its cap, 400 when it cannot be read.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	err := r.ParseForm()
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.message(w, r, http.StatusRequestEntityTooLarge, "Too much", message{Tone: "error", Heading: "That was too much to send",
			Paragraphs: []string{"The form sent more than pmsbridge accepts. Shorten what you typed and try again."}})
		return false
	}
	s.badRequest(w, r, "The form could not be read.")
	return false
}
