// Package pmsbridge holds the domain vocabulary shared by every part of the
// service: cause codes for failures, the error type that carries them, and the
// programme and exercise types that the app, the jobs and the PDF renderer pass
// around. It imports nothing from the rest of the module.
package pmsbridge

import (
	"errors"
	"fmt"
)

// Cause is a stable code naming why something failed. Cause strings are part of
// the public contract (failed jobs, import status, PDF sync state): never rename
// one.
type Cause string

// The cause codes of design.md.
const (
	CauseClinikoUnauthorized Cause = "cliniko_unauthorized" // 401: key revoked or wrong shard
	CauseClinikoForbidden    Cause = "cliniko_forbidden"    // 403: the Cliniko role may not do this
	CauseClinikoNotFound     Cause = "cliniko_not_found"    // 404: not in this key's account, or archived
	CauseClinikoInvalid      Cause = "cliniko_invalid"      // 422 (and other 4xx): Cliniko refused the data
	CauseClinikoRateLimited  Cause = "cliniko_rate_limited" // 429: transient, wait until the reset time
	CauseClinikoUnavailable  Cause = "cliniko_unavailable"  // 5xx, timeouts, network: transient
	CauseNoClinikoKey        Cause = "no_cliniko_key"       // nobody with a saved key can do this
	CauseNotLinked           Cause = "not_linked"           // the patient has no Cliniko link
	CauseInvalidPayload      Cause = "invalid_payload"      // a task or request that can never succeed
	CauseInternal            Cause = "internal"             // a bug or an unexpected state

	// Messages to patients (their programme code).
	CauseNoContact           Cause = "no_contact"           // no email address or mobile number for the channel
	CauseDeliveryRejected    Cause = "delivery_rejected"    // the mail server or Twilio refused this for good
	CauseDeliveryUnavailable Cause = "delivery_unavailable" // transient: retried
)

// Causes lists every cause code, in the order support pages show them.
var Causes = []Cause{
	CauseClinikoUnauthorized, CauseClinikoForbidden, CauseClinikoNotFound,
	CauseClinikoInvalid, CauseClinikoRateLimited, CauseClinikoUnavailable,
	CauseNoClinikoKey, CauseNotLinked, CauseInvalidPayload, CauseInternal,
	CauseNoContact, CauseDeliveryRejected, CauseDeliveryUnavailable,
}

// Valid reports whether c is one of the known cause codes.
func (c Cause) Valid() bool {
	for _, k := range Causes {
		if k == c {
			return true
		}
	}
	return false
}

// Transient reports whether a failure with this cause is expected to go away
// by itself, so the work should be retried later rather than given up.
func (c Cause) Transient() bool {
	return c == CauseClinikoRateLimited || c == CauseClinikoUnavailable || c == CauseDeliveryUnavailable
}

// Error is a failure with a cause code and a message that is safe to show to
// users and support staff: it never holds secrets or patient details.
type Error struct {
	Cause   Cause
	Message string
	Err     error // the underlying error, for logs and errors.Is; may be nil
}

// Errorf returns an *Error with the given cause and a formatted message.
func Errorf(cause Cause, format string, args ...any) *Error {
	return &Error{Cause: cause, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return fmt.Sprintf("%s: %v", e.Cause, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Cause, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// CauseOf returns the cause carried by err (through any wrapping), or
// CauseInternal when err carries none. A nil error has no cause ("").
func CauseOf(err error) Cause {
	if err == nil {
		return ""
	}
	var c interface{ ErrorCause() Cause }
	if errors.As(err, &c) {
		return c.ErrorCause()
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Cause
	}
	return CauseInternal
}

// MessageOf returns the user-safe message carried by err, or a generic
// sentence when it has none.
func MessageOf(err error) string {
	var m interface{ ErrorMessage() string }
	if errors.As(err, &m) {
		return m.ErrorMessage()
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "An unexpected error happened. Support has the details."
}
