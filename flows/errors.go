package flows

import (
	"fmt"
	"time"
)

// The errors of the flows form a small vocabulary, like wtf's error codes:
//
//   - *Error with a Code: a request refused for a reason the user can act
//     on, with a Message to show them (bad input, a state that does not fit,
//     something not found, a stale signature, a limit reached);
//   - *NotSharedError and *OwnerOnlyError: the sharing rules said no; they
//     name the owner, so the page can say whom to ask;
//   - an error carrying a pmsbridge cause (pmsbridge.Error, cliniko.Error):
//     work that failed with that cause (an import), or no Cliniko key
//     (pmsbridge.CauseNoClinikoKey);
//   - anything else is ours (Redis unreachable, a record that cannot be
//     read): the caller logs it and says "try again".

// Code classifies a refusal.
type Code string

// The refusal codes.
const (
	Invalid      Code = "invalid"      // the input cannot be used
	Conflict     Code = "conflict"     // the request does not fit how things stand
	NotFound     Code = "not_found"    // no such thing, as far as the asker may know
	Unauthorized Code = "unauthorized" // the sender could not be trusted (a stale signature)
	TooMany      Code = "too_many"     // a limit was reached; RetryAt says when it opens again
)

// Error is a request refused with a message the user can act on. Message is
// shown as it is: it never holds secrets or patient details beyond what the
// asker typed or may see.
type Error struct {
	Code    Code
	Message string
	Err     error // what the store or Cliniko said, for logs and errors.Is; may be nil
	// RetryAt is when the request may be made again (with TooMany); zero
	// when it says nothing about that.
	RetryAt time.Time
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// refuse returns an *Error with code and message.
func refuse(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// NotSharedError says the patient belongs to a colleague who has not shared
// them with the practitioner asking. Owner is the owner's name, "" when the
// patient is not of the asker's clinic (it is not named then).
type NotSharedError struct{ Owner string }

func (e *NotSharedError) Error() string { return "patient not shared with this practitioner" }

// OwnerOnlyError says only the owner may do this (share, unshare or transfer
// a patient: design.md's sharing rules). Owner is the owner's name ("" when
// it cannot be read); PatientID is the patient's.
type OwnerOnlyError struct{ Owner, PatientID string }

func (e *OwnerOnlyError) Error() string { return "only the patient's owner may do this" }
