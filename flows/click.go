package flows

import (
	"context"
	"errors"

	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// LinkedClick is what OpenLinked found for a click.
type LinkedClick struct {
	// PatientID is set when the click is answered: the patient is linked
	// and the practitioner may open them (a refresh of their details is
	// queued in the background when one is due).
	PatientID string
	// Practitioner is, for a click not answered here, the logged-in
	// practitioner of the session (active): the click is left to Open (not
	// linked, no key, or a record to be read the ordinary way), or refused
	// (*NotSharedError). Nil when the session is unknown or expired, or
	// its practitioner is gone or inactive: the click is answered as one
	// without a session.
	Practitioner *store.Practitioner
	// ClinikoUser is the Cliniko user of their saved key (nil: none).
	ClinikoUser *store.ClinikoUser
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
	if rc.Allowed() {
		if rc.RefreshDue {
			f.refreshInBackground(ctx, jobs.RefreshPayload{PractitionerID: rc.PractitionerID, PatientID: rc.PatientID})
		}
		return LinkedClick{PatientID: rc.PatientID}, nil
	}
	pr, cu, hasKey, err := rc.Login()
	if errors.Is(err, store.ErrNotFound) {
		return LinkedClick{}, nil
	}
	if err != nil {
		return LinkedClick{}, err
	}
	if !pr.Active {
		return LinkedClick{}, nil
	}
	lc := LinkedClick{Practitioner: &pr}
	if hasKey {
		lc.ClinikoUser = &cu
	}
	if rc.Outcome == store.ClickDecided {
		return lc, &NotSharedError{Owner: rc.Access.OwnerName}
	}
	return lc, nil
}
