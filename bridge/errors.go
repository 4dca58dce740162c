package bridge

import (
	"net/http"
	"strconv"

	"github.com/physitrack/pmsbridge"
)

func itoa(n int) string { return strconv.Itoa(n) }

// causePage is the one place where a failure's cause becomes a page for a
// clinician: its status, heading, explanation and what to do.
func causePage(cause pmsbridge.Cause, reason string) (int, message) {
	settings := link{Text: "Open Cliniko settings", URL: "/settings/cliniko"}
	patients := link{Text: "Go to your patients", URL: "/patients", Secondary: true}
	switch cause {
	case pmsbridge.CauseClinikoUnauthorized:
		return http.StatusForbidden, message{Tone: "error", Heading: "Cliniko did not accept your API key",
			Paragraphs: []string{
				"pmsbridge uses your personal Cliniko API key to read this patient. Cliniko refused it: the key may have been revoked or replaced, or it belongs to a Cliniko account in another Cliniko region (shard).",
			},
			Steps: []string{
				"In Cliniko, click your name (top right), then My info → Manage API keys, and create a new key.",
				"Paste it in pmsbridge under Cliniko settings and save.",
				"Click \"Open in pmsbridge\" in Cliniko again.",
			},
			Links: []link{settings, patients}}
	case pmsbridge.CauseClinikoForbidden:
		return http.StatusForbidden, message{Tone: "error", Heading: "Your Cliniko role does not allow this",
			Paragraphs: []string{
				"Cliniko refused the request because of the role of the Cliniko user your API key belongs to. For example, a Scheduler may not see or upload patient files.",
				"Ask your Cliniko administrator to give your Cliniko user the Practitioner, Receptionist or Administrator role, or save the key of a user who has one.",
			},
			Links: []link{settings, patients}}
	case pmsbridge.CauseClinikoNotFound:
		return http.StatusNotFound, message{Tone: "warn", Heading: "This patient is not in your Cliniko account",
			Paragraphs: []string{
				"Cliniko says the patient does not exist in the Cliniko account that your saved API key belongs to. Usually this means the key is from another Cliniko account (for example a different clinic), or the patient has been archived in Cliniko.",
			},
			Steps: []string{
				"Check under Cliniko settings which Cliniko user and account your key belongs to.",
				"If it is the wrong account, create a key in the Cliniko account where this patient is and save it.",
				"If the patient was archived in Cliniko, unarchive them there first.",
			},
			Links: []link{settings, patients}, NotYou: true}
	case pmsbridge.CauseClinikoInvalid:
		return http.StatusUnprocessableEntity, message{Tone: "error", Heading: "Cliniko refused the request",
			Paragraphs: []string{"Cliniko did not accept what pmsbridge sent.", reasonOr(reason, "Support has the details.")},
			Links:      []link{patients}}
	case pmsbridge.CauseClinikoRateLimited, pmsbridge.CauseClinikoUnavailable:
		return http.StatusServiceUnavailable, message{Tone: "warn", Heading: "Cliniko is busy — still trying",
			Paragraphs: []string{"Cliniko is not answering right now, or asked us to slow down. pmsbridge keeps trying by itself; you do not need to do anything.", "This page updates by itself."},
			Links:      []link{patients}}
	case pmsbridge.CauseNoClinikoKey:
		return http.StatusConflict, message{Tone: "warn", Heading: "Add your Cliniko API key first",
			Paragraphs: []string{"pmsbridge needs your personal Cliniko API key to read patients from Cliniko."},
			Links:      []link{settings}}
	case pmsbridge.CauseNotLinked:
		return http.StatusConflict, message{Tone: "warn", Heading: "This patient is not linked to Cliniko",
			Paragraphs: []string{"Open the patient from Cliniko with the \"Open in pmsbridge\" button to link them."},
			Links:      []link{patients}}
	default:
		return http.StatusInternalServerError, message{Tone: "error", Heading: "Something went wrong on our side",
			Paragraphs: []string{"pmsbridge could not finish this. It is not something you did. Try again in a minute; if it keeps happening, contact support and quote the support reference at the bottom of this page."},
			Links:      []link{patients}}
	}
}

func reasonOr(reason, fallback string) string {
	if reason != "" {
		return reason
	}
	return fallback
}

func (s *Server) causeError(w http.ResponseWriter, r *http.Request, cause pmsbridge.Cause, reason string) {
	status, m := causePage(cause, reason)
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
	s.causeError(w, r, pmsbridge.CauseInternal, "")
}

func (s *Server) unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	s.message(w, r, http.StatusServiceUnavailable, "Unavailable", message{Tone: "warn", Heading: "pmsbridge is briefly unavailable",
		Paragraphs: []string{"We cannot reach our database right now. Please try again in a few seconds."}})
}
