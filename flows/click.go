package flows

import (
	"context"
	"errors"

	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// LinkedClick is what OpenLinked found for a click.
type LinkedClick struct {
	// Practitioner is the logged-in practitioner of the session (active);
	// nil when the session is unknown or expired, or its practitioner is
	// gone or inactive: the click is answered as one without a session.
	Practitioner *store.Practitioner
	// ClinikoUser is the Cliniko user of their saved key (nil: none).
	ClinikoUser *store.ClinikoUser
	// PatientID is set when the click is answered: the patient is linked
	// and the practitioner may open them (a refresh of their details is
	// queued in the background). Empty with Practitioner set: not decided
	// here (not linked, no key, or a record to be read the ordinary way);
	// Open decides.
	PatientID string
}

// OpenLinked is the Cliniko button's fast path for a patient already linked:
// the session of token, its practitioner, their key, the link of Cliniko
// patient cid and the sharing rules, all in one Redis round trip
// (store.ResolveClick). It answers the linked click as Open does: the
// patient to open, or *NotSharedError naming the owner for a colleague's
// patient (LinkedClick.Practitioner set, for the page). Everything else
// (not linked, no key) is left to Open with the practitioner it found.
// Errors other than *NotSharedError are Redis's or an unreadable record's.
func (f *Flows) OpenLinked(ctx context.Context, token, cid string) (LinkedClick, error) {
	rc, err := f.Store.ResolveClick(ctx, token, cid)
	if errors.Is(err, store.ErrNotFound) {
		return LinkedClick{}, nil
	}
	if err != nil {
		return LinkedClick{}, err
	}
	if !rc.Practitioner.Active {
		return LinkedClick{}, nil
	}
	lc := LinkedClick{Practitioner: &rc.Practitioner}
	if rc.HasKey {
		lc.ClinikoUser = &rc.ClinikoUser
	}
	if rc.Outcome != store.ClickDecided {
		return lc, nil
	}
	if !rc.Access.Allowed {
		return lc, &NotSharedError{Owner: rc.Access.OwnerName}
	}
	lc.PatientID = rc.PatientID
	f.refreshInBackground(ctx, jobs.RefreshPayload{PractitionerID: rc.Practitioner.ID, PatientID: rc.PatientID})
	return lc, nil
}
