package cliniko

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
)

// Error is a failed Cliniko call. Every error returned by the client's
// operations is (or wraps) an *Error, so pmsbridge.CauseOf and
// pmsbridge.MessageOf work on it. Its text never holds the API key or
// patient details: only the operation, the status, the cause and Cliniko's
// own short message.
type Error struct {
	// Op is the operation that failed ("get_patient", "presign", ...).
	Op string
	// Status is the HTTP status Cliniko answered; 0 when there was no answer
	// (network error, timeout) or the client refused to send the request.
	Status int
	// Cause is the stable cause code (see CauseForStatus).
	Cause pmsbridge.Cause
	// Message is Cliniko's message from the response body (for example
	// "Validation Failed"), or the client's own short explanation.
	Message string
	// Fields holds Cliniko's per-field validation errors of a 422, for
	// example {"temp_attachment_url": "is invalid"}.
	Fields map[string]string
	// RetryAt is when to try again: for a 429 from Cliniko the time in
	// X-RateLimit-Reset; for a refusal by our own limiter (WithoutWaiting)
	// when the next request slot opens. Zero otherwise.
	RetryAt time.Time
	// Err is the underlying error (network error, context error,
	// ErrBadShard), for errors.Is; may be nil.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cliniko ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "status %d: ", e.Status)
	}
	b.WriteString(string(e.Cause))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Fields) > 0 {
		b.WriteString(" (")
		for i, k := range slices.Sorted(maps.Keys(e.Fields)) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + " " + e.Fields[k])
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if !e.RetryAt.IsZero() {
		b.WriteString("; retry at ")
		b.WriteString(e.RetryAt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// RetryTime is when a rate-limited call may be tried again (zero when the
// error says nothing about it).
func (e *Error) RetryTime() time.Time { return e.RetryAt }

// ErrorCause returns the cause code; pmsbridge.CauseOf uses it.
func (e *Error) ErrorCause() pmsbridge.Cause { return e.Cause }

// Temporary reports whether the failure is expected to go away by itself
// (rate limits, Cliniko unavailable), so the work should be retried later:
// the cause table's rule (pmsbridge.Cause.Transient).
func (e *Error) Temporary() bool { return e.Cause.Transient() }

// ErrorMessage returns a plain-English sentence, safe to show to
// practitioners and support staff, saying what went wrong; pmsbridge.MessageOf
// uses it. It is the cause's reason from the cause table, except for a key
// whose shard suffix is not a Cliniko shard, which the table's 401 wording
// would misexplain.
func (e *Error) ErrorMessage() string {
	if errors.Is(e.Err, ErrBadShard) {
		return BadShardMessage
	}
	return e.Cause.Info().Reason
}

// CauseForStatus maps a Cliniko HTTP status to a cause code. It is the one
// place where statuses become causes. Status 0 (no answer) is
// cliniko_unavailable.
func CauseForStatus(status int) pmsbridge.Cause {
	switch {
	case status == 401:
		return pmsbridge.CauseClinikoUnauthorized
	case status == 403:
		return pmsbridge.CauseClinikoForbidden
	case status == 404:
		return pmsbridge.CauseClinikoNotFound
	case status == 429:
		return pmsbridge.CauseClinikoRateLimited
	case status >= 400 && status < 500:
		return pmsbridge.CauseClinikoInvalid
	case status >= 500 || status == 0:
		return pmsbridge.CauseClinikoUnavailable
	}
	// 1xx/2xx/3xx where a success was expected: Cliniko answered something we
	// cannot use.
	return pmsbridge.CauseClinikoUnavailable
}

// maxMessage bounds how much of Cliniko's message we keep.
const maxMessage = 200

// statusError builds the *Error for a non-success answer, taking Cliniko's
// message and field errors from a JSON body when there is one.
func statusError(op string, status int, body []byte) *Error {
	e := &Error{Op: op, Status: status, Cause: CauseForStatus(status)}
	var b struct {
		Message string                     `json:"message"`
		Errors  map[string]json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.Message = truncate(b.Message, maxMessage)
		for k, raw := range b.Errors {
			if e.Fields == nil {
				e.Fields = map[string]string{}
			}
			e.Fields[truncate(k, 64)] = truncate(fieldText(raw), maxMessage)
		}
	}
	return e
}

// fieldText renders one value of a 422 "errors" object: a string, null, or
// (defensively) a list of strings.
func fieldText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		return strings.Join(l, "; ")
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
