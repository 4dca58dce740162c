package bridge

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/store"
)

func itoa(n int) string { return strconv.Itoa(n) }

// The one rule from errors to answers (answerFor), like wtf's
// ErrorStatusCode: a handler that fails calls Error (pages) or errorJSON
// (JSON) and nothing else decides a status. Only errors of our own are
// logged, once, at ERROR, with the request's id; they answer 503 with
// Retry-After (Redis unreachable, a record that cannot be read: the request
// may simply be made again). 500 is left for a page that cannot be
// rendered and a panic.

// answer is how a request that failed is answered.
type answer struct {
	status int
	// text is what the user reads: a refusal's message, or a short word
	// for JSON.
	text string
	// cause is set for work that failed with a cause: its page comes from
	// the cause table.
	cause pmsbridge.Cause
	// ours: an error of ours, logged; "try again".
	ours bool
	// retryAt is when a refusal for a limit lifts (Retry-After).
	retryAt time.Time
}

// tryAgainAfter is the Retry-After of an error of ours, in seconds.
const tryAgainAfter = "5"

// answerFor is the rule.
func answerFor(err error) answer {
	var (
		refusal  *flows.Error
		notOurs  *flows.NotSharedError
		owner    *flows.OwnerOnlyError
		bad      *badRequest
		tooBig   *http.MaxBytesError
		carrying interface{ ErrorCause() pmsbridge.Cause }
		failed   *pmsbridge.Error
	)
	switch {
	case errors.As(err, &refusal):
		return answer{status: codeStatus[refusal.Code], text: refusal.Message, retryAt: refusal.RetryAt}
	case errors.As(err, &notOurs):
		return answer{status: http.StatusNotFound, text: "no such patient"}
	case errors.As(err, &owner):
		return answer{status: http.StatusForbidden, text: "only the patient's owner may do this"}
	case errors.As(err, &tooBig):
		return answer{status: http.StatusRequestEntityTooLarge, text: "The form sent more than pmsbridge accepts. Shorten what you typed and try again."}
	case errors.As(err, &bad):
		return answer{status: http.StatusBadRequest, text: bad.text}
	case errors.As(err, &carrying) || errors.As(err, &failed):
		c := pmsbridge.CauseOf(err)
		return answer{status: causeLookOf(c).status, cause: c, text: string(c)}
	case errors.Is(err, store.ErrNotFound):
		return answer{status: http.StatusNotFound, text: "not found"}
	case errors.Is(err, store.ErrInvalid):
		return answer{status: http.StatusUnprocessableEntity, text: err.Error()}
	case errors.Is(err, store.ErrConflict):
		return answer{status: http.StatusConflict, text: err.Error()}
	}
	return answer{status: http.StatusServiceUnavailable, text: "try again", ours: true}
}

// codeStatus is the HTTP status of each refusal code of the flows.
var codeStatus = map[flows.Code]int{
	flows.Invalid:      http.StatusUnprocessableEntity,
	flows.Conflict:     http.StatusConflict,
	flows.NotFound:     http.StatusNotFound,
	flows.Unauthorized: http.StatusUnauthorized,
	flows.TooMany:      http.StatusTooManyRequests,
}

// retryAfter sets Retry-After for an answer that says when to come back (by
// the app's clock, which decided the limit).
func (s *Server) retryAfter(w http.ResponseWriter, a answer) {
	if a.ours {
		w.Header().Set("Retry-After", tryAgainAfter)
	} else if !a.retryAt.IsZero() {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(a.retryAt.Sub(s.cfg.Now()).Seconds())+1)))
	}
}

// badRequest is a request that cannot be read (a form that does not parse).
type badRequest struct{ text string }

func (e *badRequest) Error() string { return "bad request: " + e.text }

// resumable marks err as met at a place the practitioner comes back to
// after the fix (a key saved) or to try again (Cliniko was busy): the
// receiver's click without its check.
type resumable struct {
	error
	at string
}

func (e resumable) Unwrap() error { return e.error }

func resumeAt(err error, at string) error { return resumable{err, at} }

// Error answers a page request that failed with err (see answerFor): a
// refusal's message, a colleague's patient, the owner-only rule, a cause's
// page from the cause table, or "something went wrong on our side" (logged)
// for an error of ours. Without a Cliniko key, the practitioner is sent to
// the settings page, and back afterwards.
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	a := answerFor(err)
	var (
		again   resumable
		notOurs *flows.NotSharedError
		owner   *flows.OwnerOnlyError
	)
	errors.As(err, &again)
	s.retryAfter(w, a)
	switch {
	case a.ours:
		s.logger(r.Context()).Error("request failed", "path", r.URL.Path, "err", err)
		s.causeError(w, r, pmsbridge.CauseInternal, "", "")
	case a.cause == pmsbridge.CauseNoClinikoKey:
		target := "/settings/cliniko?need=key"
		if again.at != "" {
			target += "&next=" + url.QueryEscape(again.at)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	case a.cause != "":
		var failed *pmsbridge.Error
		reason := ""
		if errors.As(err, &failed) {
			reason = failed.Message
		}
		status, m := causePage(a.cause, reason, again.at)
		var acct *flows.AccountError
		if errors.As(err, &acct) {
			m = withAccount(m, a.cause, acct)
		}
		s.message(w, r, status, m.Heading, m)
	case errors.As(err, &notOurs):
		s.notShared(w, r, notOurs.Owner)
	case errors.As(err, &owner):
		s.ownerOnly(w, r, owner)
	case a.status == http.StatusNotFound:
		s.notFound(w, r)
	case a.status == http.StatusRequestEntityTooLarge:
		s.message(w, r, a.status, "Too much", message{Tone: "error", Heading: "That was too much to send", Paragraphs: []string{a.text}})
	default:
		s.message(w, r, a.status, "That did not work", message{Tone: "error", Heading: "That did not work",
			Paragraphs: []string{a.text}, Links: []link{{Text: "Go to your patients", URL: "/patients"}}})
	}
}

// errorJSON answers a JSON request that failed with err: the status of
// answerFor and {"error": …} (with fields, name-value pairs, added). An
// error of ours is logged and answers "try again".
func (s *Server) errorJSON(w http.ResponseWriter, r *http.Request, err error, fields ...string) {
	a := answerFor(err)
	if a.ours {
		s.logger(r.Context()).Error("request failed", "path", r.URL.Path, "err", err)
	}
	s.retryAfter(w, a)
	body := map[string]string{"error": a.text}
	for i := 0; i+1 < len(fields); i += 2 {
		body[fields[i]] = fields[i+1]
	}
	writeJSON(w, a.status, body)
}

// causeLook is how a cause shows as a page. Its words come from the cause
// table (pmsbridge.Cause.Info); only what is HTTP's is decided here.
type causeLook struct {
	status int
	tone   string // ok, info, warn, error
	reason bool   // the failure's own reason adds to the table's words
	notYou bool   // it may be the wrong login: offer "not you? log out"
}

// causeLooks are the pages of the causes that practitioners meet and can do
// something about. Any other cause is treated as ours, like an unexpected
// error (its words are the internal cause's, pmsbridge.Cause.Info): 503.
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

// ourLook is the page of every other cause.
var ourLook = causeLook{status: http.StatusServiceUnavailable, tone: "error"}

func causeLookOf(c pmsbridge.Cause) causeLook {
	if look, ok := causeLooks[c]; ok {
		return look
	}
	return ourLook
}

// causePage is the one place where a failure's cause becomes a page for a
// clinician: its status, and the cause table's heading, explanation and
// steps. reason is the failure's own sentence; again, when not empty, is
// where the practitioner can try again, offered for causes that are retried
// by themselves (their retries ran out).
func causePage(cause pmsbridge.Cause, reason, again string) (int, message) {
	info := cause.Info()
	look := causeLookOf(cause)
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

// withAccount is page m of a failure with cause when whether the key is of
// the clinic's Cliniko account is known: the cause table's words for that
// case (SameAccount, OtherAccount), with the accounts named.
func withAccount(m message, cause pmsbridge.Cause, e *flows.AccountError) message {
	c := cause.Info().Clinician
	t := c.SameAccount
	if e.Match == store.AccountOther {
		t = c.OtherAccount
	}
	if t == nil {
		return m
	}
	name := func(a store.ClinikoAccount, unknown string) string {
		if l := a.Label(); l != "" {
			return l
		}
		return unknown
	}
	fill := strings.NewReplacer("{key}", name(e.Key, "another Cliniko account"), "{clinic}", name(e.Clinic, "your clinic's Cliniko account"))
	m.Heading = fill.Replace(t.Heading)
	m.Paragraphs, m.Steps = nil, nil
	for _, p := range t.Explain {
		m.Paragraphs = append(m.Paragraphs, fill.Replace(p))
	}
	for _, st := range t.Steps {
		m.Steps = append(m.Steps, fill.Replace(st))
	}
	return m
}

// causeError writes the page of a failure with cause (see causePage).
func (s *Server) causeError(w http.ResponseWriter, r *http.Request, cause pmsbridge.Cause, reason, again string) {
	status, m := causePage(cause, reason, again)
	s.message(w, r, status, m.Heading, m)
}

// notShared is the 404 page for a patient owned by a colleague who does not
// share it.
func (s *Server) notShared(w http.ResponseWriter, r *http.Request, owner string) {
	if owner == "" {
		owner = "a colleague"
	}
	s.message(w, r, http.StatusNotFound, "Patient owned by a colleague", message{Tone: "warn",
		Heading: "This patient belongs to " + owner,
		Paragraphs: []string{
			owner + " owns this patient in pmsbridge and has not shared them with you, so you cannot open them.",
			"To get access, ask " + owner + " to do one of these on the patient's page in pmsbridge:",
		},
		Steps: []string{
			"Share the patient with you: you can then open them, and " + owner + " stays the owner.",
			"Transfer the patient to you: you become the owner.",
			"Or ask your clinic's pmsbridge administrator to put you both in the clinic's patient-sharing group.",
		},
		Links:  []link{{Text: "Go to your patients", URL: "/patients"}},
		NotYou: true, NotYouNext: r.URL.RequestURI(),
	})
}

// ownerOnly is the 403 page for a colleague who may open a patient but
// tries to share, unshare or transfer them: only the owner (or support)
// may give a patient away. It names the owner, so the colleague knows whom
// to ask.
func (s *Server) ownerOnly(w http.ResponseWriter, r *http.Request, e *flows.OwnerOnlyError) {
	owner := e.Owner
	if owner == "" {
		owner = "their owner"
	}
	s.message(w, r, http.StatusForbidden, "Only the owner can do this", message{Tone: "warn",
		Heading: "Only " + owner + " can share or transfer this patient",
		Paragraphs: []string{
			owner + " owns this patient. You can work with them here (assign programmes, refresh their details, fix their year of birth), but only " + owner + " can share them with colleagues, stop sharing them, or transfer them.",
			"Ask " + owner + ", or your clinic's pmsbridge administrator, to do it.",
		},
		Links: []link{{Text: "Back to the patient", URL: "/patients/" + e.PatientID}},
	})
}
