// Package pmsbridge holds the domain vocabulary shared by every part of the
// service: cause codes for failures with their one table of behaviour and
// wording (causes.go), the error type that carries them, the typed states
// (birth years, imports, PDFs), and the programme and exercise types that the
// app, the jobs and the PDF renderer pass around. It imports nothing from the
// rest of the module.
package pmsbridge

import (
	"errors"
	"fmt"
)

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

// MessageOf returns the user-safe message carried by err, or the reason of
// its cause (see CauseInfo.Reason) when it carries none.
func MessageOf(err error) string {
	var m interface{ ErrorMessage() string }
	if errors.As(err, &m) {
		return m.ErrorMessage()
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return CauseOf(err).Info().Reason
}
