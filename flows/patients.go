package flows

import (
	"context"
	"strconv"
	"time"

	"github.com/physitrack/pmsbridge"

	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Refreshed is what a refresh from Cliniko came to within the wait.
type Refreshed struct {
	// Done: the details were read (Changed says what changed, Archived
	// that Cliniko no longer shows the patient). Otherwise it is still
	// running: Cause, when set, is why it takes long (Cliniko busy) or why
	// it failed for good (Failed).
	Done     bool
	Changed  []string
	Archived bool
	Failed   bool
	Cause    pmsbridge.Cause
}

// refreshPoll is how often Refresh looks at the refresh it waits for.
const refreshPoll = 25 * time.Millisecond

// Refresh reads patient p's details from Cliniko again with practitioner
// pr's key (hasKey says they have one saved; without, the cause error
// no_cliniko_key), and waits briefly for it (ImportWait, like the
// receiver's wait for an import) so the page can say what happened.
// *Error Conflict when p is not linked.
func (f *Flows) Refresh(ctx context.Context, pr store.Practitioner, hasKey bool, p store.Patient) (Refreshed, error) {
	if p.Link == nil {
		return Refreshed{}, refuse(Conflict, "This patient is not linked to Cliniko, so there is nothing to refresh.")
	}
	if !hasKey {
		return Refreshed{}, noKey()
	}
	if _, err := f.Jobs.EnqueueRefresh(ctx, jobs.RefreshPayload{PractitionerID: pr.ID, PatientID: p.ID}, true); err != nil {
		return Refreshed{}, err
	}
	taskID := jobs.RefreshTaskID(p.ID)
	deadline := f.Now().Add(f.ImportWait)
	for {
		state, _, err := f.Jobs.TaskState(ctx, jobs.QueueImport, taskID)
		if err != nil {
			return Refreshed{}, err
		}
		switch state {
		case jobs.StateNone, jobs.StateDone:
			return f.refreshed(ctx, p)
		case jobs.StateFailed, jobs.StateRetrying:
			r := Refreshed{Failed: state == jobs.StateFailed, Cause: pmsbridge.CauseInternal}
			if x, err := f.Store.GetFailure(ctx, taskID); err == nil {
				r.Cause = x.Cause
			}
			if r.Failed || !f.Now().Before(deadline) {
				return r, nil
			}
		}
		if !f.Now().Before(deadline) {
			return Refreshed{}, nil
		}
		select {
		case <-ctx.Done():
			return Refreshed{}, nil
		case <-f.After(refreshPoll):
		}
	}
}

// refreshed compares patient p as it was with what the refresh wrote.
func (f *Flows) refreshed(ctx context.Context, before store.Patient) (Refreshed, error) {
	after, err := f.Store.GetPatient(ctx, before.ID)
	if err != nil {
		return Refreshed{}, err
	}
	r := Refreshed{Done: true, Archived: after.Link != nil && after.Link.ArchivedInCliniko}
	for _, c := range []struct {
		what    string
		changed bool
	}{
		{"name", before.FirstName != after.FirstName || before.LastName != after.LastName},
		{"email address", before.Email != after.Email},
		{"mobile number", before.Mobile != after.Mobile},
		{"year of birth", before.YearOfBirth != after.YearOfBirth || before.BirthYearStatus != after.BirthYearStatus || before.BirthYearRaw != after.BirthYearRaw},
	} {
		if c.changed {
			r.Changed = append(r.Changed, c.what)
		}
	}
	return r, nil
}

// earliestBirthYear is the earliest year of birth that may be typed in.
const earliestBirthYear = 1900

// SetBirthYear sets patient p's year of birth by hand: it is kept over
// Cliniko's from then on. *Error Invalid for a year before 1900 or after
// this year.
func (f *Flows) SetBirthYear(ctx context.Context, pr store.Practitioner, p store.Patient, year int) error {
	if now := f.Now().UTC().Year(); year < earliestBirthYear || year > now {
		return refuse(Invalid, "Enter the year of birth as four digits, between 1900 and "+strconv.Itoa(now)+".")
	}
	if _, err := f.Store.UpdatePatient(ctx, p.ID, func(x *store.Patient) error {
		x.SetManualYear(year)
		return nil
	}); err != nil {
		return err
	}
	f.audit(ctx, pr.ID, p.ID, "patient.birth_year.year", "")
	return nil
}

// UseClinikoYear takes Cliniko's year of birth back for patient p, after a
// year set by hand. *Error Conflict when Cliniko has no differing year.
func (f *Flows) UseClinikoYear(ctx context.Context, pr store.Practitioner, p store.Patient) error {
	changed := false
	if _, err := f.Store.UpdatePatient(ctx, p.ID, func(x *store.Patient) error {
		changed = x.UseClinikoYear()
		return nil
	}); err != nil {
		return err
	}
	if !changed {
		return refuse(Conflict, "There is no differing year from Cliniko to use.")
	}
	f.audit(ctx, pr.ID, p.ID, "patient.birth_year.cliniko", "")
	return nil
}
