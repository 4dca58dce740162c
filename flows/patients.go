package flows

import (
	"context"
	"strconv"

	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Refresh reads patient p's details from Cliniko again, in the background,
// with practitioner pr's key (hasKey says they have one saved; without, the
// cause error no_cliniko_key). *Error Conflict when p is not linked.
func (f *Flows) Refresh(ctx context.Context, pr store.Practitioner, hasKey bool, p store.Patient) error {
	if p.Link == nil {
		return refuse(Conflict, "This patient is not linked to Cliniko, so there is nothing to refresh.")
	}
	if !hasKey {
		return noKey()
	}
	_, err := f.Jobs.EnqueueRefresh(ctx, jobs.RefreshPayload{PractitionerID: pr.ID, PatientID: p.ID}, true)
	return err
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
