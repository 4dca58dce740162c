package flows

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/physitrack/pmsbridge/store"
)

// Limits of the platform's events.
const (
	// EventTolerance is how far an event's signature time may be from now.
	EventTolerance = 5 * time.Minute
	eventTTL       = 30 * 24 * time.Hour
	// eventClaimTTL is how long an event id is held before its programme is
	// safely stored; a redelivery meanwhile is a duplicate only once the
	// programme is stored (eventStored), so a delivery cut off half-way (a
	// crash, a Redis failover) does not swallow the event.
	eventClaimTTL = 2 * time.Minute
	// eventWorkTimeout bounds the work after the event is claimed, which
	// does not stop when the caller hangs up.
	eventWorkTimeout = 10 * time.Second
	maxEventID       = 200
)

// PlatformEvent is an event of the platform's webhook whose signature is
// good.
type PlatformEvent struct {
	ID       string
	Type     string
	SignedAt time.Time
	// Programme is data.programme of a programme.assigned event.
	Programme *PlatformProgramme
}

// PlatformProgramme is the programme version that the platform assigns:
// our patient and practitioner ids, and the assignment (Version set,
// exercises spelt out).
type PlatformProgramme struct {
	PatientID, PractitionerID string
	Assignment
}

// Accepted is what became of an event.
type Accepted int

// The fates of an accepted event.
const (
	AcceptedNew       Accepted = iota + 1 // stored and queued now
	AcceptedDuplicate                     // seen before: nothing done
)

// AcceptEvent takes a platform event once per event id: the id decides
// duplicates, whatever the signature time. The programme version goes the
// way of every assignment (assign). Errors: *Error Invalid (the event cannot
// be used; nothing is queued), *Error Unauthorized (a stale signature), or
// one of ours (try again later: the event is released and a redelivery is
// done in full).
func (f *Flows) AcceptEvent(ctx context.Context, ev PlatformEvent) (Accepted, error) {
	if ev.ID == "" || len(ev.ID) > maxEventID {
		return 0, refuse(Invalid, "event id is missing or too long")
	}
	// Once the event is claimed, the work must run to its end even if the
	// caller hangs up (a platform that timed out): stopping half-way would
	// leave the event claimed with nothing queued, and every redelivery
	// would then be answered "duplicate".
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventWorkTimeout)
	defer cancel()
	key := "programmes:" + ev.ID
	first, err := f.Store.ClaimEvent(ctx, key, eventClaimTTL)
	if err != nil {
		return 0, err
	}
	if !first {
		switch stored, err := f.eventStored(ctx, ev); {
		case err != nil:
			return 0, err
		case stored:
			return AcceptedDuplicate, nil
		}
		// Claimed by a delivery whose work has not stored the programme:
		// still under way, or cut off (Redis failed over under it, so its
		// release failed too). Do the work; it is idempotent.
	}
	if err := f.acceptEvent(ctx, ev); err != nil {
		if rerr := f.Store.ReleaseEvent(ctx, key); rerr != nil {
			f.logger(ctx).Warn("release webhook event", "err", rerr)
		}
		return 0, err
	}
	if err := f.Store.ConfirmEvent(ctx, key, eventTTL); err != nil {
		// The programme is stored and queued; a redelivery would find the
		// same version and queue nothing new, so this is not a failure.
		f.logger(ctx).Warn("confirm webhook event", "err", err)
	}
	return AcceptedNew, nil
}

// acceptEvent checks a claimed event and assigns its programme version.
func (f *Flows) acceptEvent(ctx context.Context, ev PlatformEvent) error {
	if d := f.Now().Sub(ev.SignedAt); d > EventTolerance || d < -EventTolerance {
		return refuse(Unauthorized, "stale signature timestamp (older than 5 minutes)")
	}
	if ev.Type != "programme.assigned" {
		return refuse(Invalid, "unknown event type "+strconv.Quote(ev.Type))
	}
	wp := ev.Programme
	if wp == nil || wp.ProgrammeID == "" || wp.Version < 1 || wp.PatientID == "" || wp.PractitionerID == "" {
		return refuse(Invalid, "data.programme needs id, version (1 or more), patient_id and practitioner_id")
	}
	if !validProgrammeID(wp.ProgrammeID) {
		return refuse(Invalid, "programme id must be 1-64 letters, digits, '_' or '-'")
	}
	// Only a record that is not there is the sender's mistake (Invalid, not
	// retried); failing to read one is ours (delivered again later).
	patient, err := f.Store.GetPatient(ctx, wp.PatientID)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(Invalid, "unknown patient")
	} else if err != nil {
		return err
	}
	pr, err := f.Store.GetPractitioner(ctx, wp.PractitionerID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !pr.Active {
		return refuse(Invalid, "unknown or inactive practitioner")
	} else if err != nil {
		return err
	}
	var notShared *NotSharedError
	if _, err := f.access(ctx, pr, patient); errors.As(err, &notShared) {
		return refuse(Invalid, "the practitioner may not open this patient")
	} else if err != nil {
		return err
	}
	prog, err := f.programme(ctx, pr, patient, wp.Assignment, nil)
	if err != nil {
		return err
	}
	_, err = f.assign(ctx, prog, patient)
	return err
}

// eventStored reports whether the programme version of an event is stored
// and, when redis.ack_replicas asks for it, on the replicas: only then is a
// repeated event a duplicate.
func (f *Flows) eventStored(ctx context.Context, ev PlatformEvent) (bool, error) {
	wp := ev.Programme
	if wp == nil || !validProgrammeID(wp.ProgrammeID) || wp.Version < 1 {
		return true, nil // rejected when it came first; nothing to store
	}
	if _, err := f.Store.GetProgramme(ctx, wp.ProgrammeID, wp.Version); errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, f.Store.Durable(ctx)
}

func validProgrammeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
