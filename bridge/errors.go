package bridge

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/physitrack/pmsbridge"
)

func itoa(n int) string { return strconv.Itoa(n) }

// causeLook is how a cause shows as a page. Its words come from the cause
// table (pmsbridge.Cause.Info); only what is HTTP's is decided here.
type causeLook struct {
	status int
	tone   string // ok, info, warn, error
	reason bool   // the failure's own reason adds to the table's words
	notYou bool   // it may be the wrong login: offer "not you? log out"
}

// causeLooks are the pages of the causes that practitioners meet; any other
// cause is a 500 in the error tone.
var causeLooks = map[pmsbridge.Cause]causeLook{
	pmsbridge.CauseClinikoUnauthorized: {status: http.StatusForbidden, tone: "error"},
	pmsbridge.CauseClinikoForbidden:    {status: http.StatusForbidden, tone: "error"},
	pmsbridge.CauseClinikoNotFound:     {status: http.StatusNotFound, tone: "warn", notYou: true},
	pmsbridge.CauseClinikoInvalid:      {status: http.StatusUnprocessableEntity, tone: "error", reason: true},
	pmsbridge.CauseClinikoRateLimited:  {status: http.StatusServiceUnavailable, tone: "warn"},
	pmsbridge.CauseClinikoUnavailable:  {status: http.StatusServiceUnavailable, tone: "warn"},
	pmsbridge.CauseNoClinikoKey:        {status: http.StatusConflict, tone: "warn"},
	pmsbridge.CauseNotLinked:           {status: http.StatusConflict, tone: "warn"},
}

// causePage is the one place where a failure's cause becomes a page for a
// clinician: its status, and the cause table's heading, explanation and
// steps. reason is the failure's own sentence; again, when not empty, is
// where the practitioner can try again, offered for causes that are retried
// by themselves (their retries ran out).
func causePage(cause pmsbridge.Cause, reason, again string) (int, message) {
	info := cause.Info()
	look, ok := causeLooks[cause]
	if !ok {
		look = causeLook{status: http.StatusInternalServerError, tone: "error"}
	}
	t := info.Clinician.Text
	m := message{Tone: look.tone, Heading: t.Heading, Paragraphs: slices.Clone(t.Explain), Steps: t.Steps, NotYou: look.notYou}
	if look.reason && reason != "" {
		m.Paragraphs = append(m.Paragraphs, reason)
	}
	if again != "" && cause.Transient() {
		m.Links = append(m.Links, link{Text: "Try again", URL: again})
	}
	if info.Clinician.Settings {
		m.Links = append(m.Links, link{Text: "Open Cliniko settings", URL: "/settings/cliniko"})
	}
	m.Links = append(m.Links, link{Text: "Go to your patients", URL: "/patients", Secondary: true})
	return look.status, m
}

// causeError writes the page of a failure with cause (see causePage).
func (s *Server) causeError(w http.ResponseWriter, r *http.Request, cause pmsbridge.Cause, reason, again string) {
	status, m := causePage(cause, reason, again)
	s.message(w, r, status, m.Heading, m)
}

func (s *Server) badRequest(w http.ResponseWriter, r *http.Request, text string) {
	s.message(w, r, http.StatusBadRequest, "Bad request", message{Tone: "error", Heading: "That did not work",
		Paragraphs: []string{text}, Links: []link{{Text: "Go to your patients", URL: "/patients"}}})
}

// internalError logs err (never shown: it may hold details) and shows a
// page with the request's reference.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", err)
	s.causeError(w, r, pmsbridge.CauseInternal, "", "")
}

func (s *Server) unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	s.message(w, r, http.StatusServiceUnavailable, "Unavailable", message{Tone: "warn", Heading: "pmsbridge is briefly unavailable",
		Paragraphs: []string{"We cannot reach our database right now. Please try again in a few seconds."}})
}
