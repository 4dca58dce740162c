package store

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Store methods wrap them with context; compare with
// errors.Is. Messages never hold secrets or patient details.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change clashes with existing data (an email already
	// taken) or with concurrent writers.
	ErrConflict = errors.New("conflict")
	// ErrBadCredentials: wrong email, password or year of birth, or an
	// inactive practitioner.
	ErrBadCredentials = errors.New("bad credentials")
	// ErrLocked: too many recent failures; the error is a *LockedError that
	// says until when.
	ErrLocked = errors.New("locked")
	// ErrInvalid: the input breaks a rule; often a *ValidationError listing
	// every problem.
	ErrInvalid = errors.New("invalid")
	// ErrNoKey: the store was opened without encryption keys (a read-only
	// support tool), so encrypted fields can be neither read nor written.
	ErrNoKey = errors.New("no encryption key")
	// ErrBusy: too many password checks are running in this process; the
	// attempt was not checked (and not counted). Try again in a moment.
	ErrBusy = errors.New("busy: too many password checks at once")
)

// LockedError is returned while an account, a client address or a
// programme code is locked after too many failures, or while a patient's
// code has been sent again as often as allowed. errors.Is(err,
// ErrLocked) holds.
type LockedError struct {
	// Scope says what is locked: "account", "client", "code" or "resend"
	// (a patient's resends).
	Scope string
	// Until is when the next attempt is allowed again.
	Until time.Time
}

// Error names what is locked and until when (no account or address).
func (e *LockedError) Error() string {
	return fmt.Sprintf("%s locked until %s", e.Scope, e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// ValidationError lists every problem with an input at once, so a form or
// an API can show them together. errors.Is(err, ErrInvalid) holds.
type ValidationError struct {
	// What names the input, e.g. "practitioner".
	What string
	// Problems are short, user-safe sentences.
	Problems []string
}

// Error lists the problems in one line.
func (e *ValidationError) Error() string {
	return "invalid " + e.What + ": " + strings.Join(e.Problems, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(what string, problems ...string) error {
	return &ValidationError{What: what, Problems: problems}
}
