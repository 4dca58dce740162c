package flows

import (
	"context"
	"errors"
	"strings"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// ShareAction is what a sharing request asks.
type ShareAction int

// The sharing actions; ShareUnknown is a request for neither.
const (
	ShareUnknown ShareAction = iota
	ShareOn
	ShareOff
)

// Share shares patient p of practitioner pr with the colleague whose login
// is email (ShareOn), or stops sharing them (ShareOff). Only the owner may
// (*OwnerOnlyError); a colleague who is not one of the clinic's active
// practitioners, or the owner, is *Error Invalid. It returns the colleague.
func (f *Flows) Share(ctx context.Context, pr store.Practitioner, p store.Patient, email string, action ShareAction) (store.Practitioner, error) {
	c, err := f.handOver(ctx, pr, p, email)
	if err != nil {
		return c, err
	}
	switch action {
	case ShareOn:
		if c.ID == p.OwnerID {
			return c, refuse(Invalid, c.Name+" already owns this patient.")
		}
		err = f.Store.Share(ctx, p.ID, c.ID)
	case ShareOff:
		err = f.Store.Unshare(ctx, p.ID, c.ID)
	default:
		return c, refuse(Invalid, "Choose share or unshare.")
	}
	if errors.Is(err, store.ErrInvalid) {
		return c, &Error{Code: Invalid, Message: "That colleague cannot be given this patient.", Err: err}
	}
	if err != nil {
		return c, err
	}
	op := "patient.shared"
	if action == ShareOff {
		op = "patient.unshared"
	}
	f.audit(ctx, pr.ID, p.ID, op, "with "+c.ID)
	return c, nil
}

// Transfer makes the colleague whose login is email the owner of patient p
// of practitioner pr. The rules and errors are Share's. It reports whether
// pr may still open the patient afterwards.
func (f *Flows) Transfer(ctx context.Context, pr store.Practitioner, p store.Patient, email string) (bool, error) {
	c, err := f.handOver(ctx, pr, p, email)
	if err != nil {
		return false, err
	}
	if c.ID == p.OwnerID {
		return false, refuse(Invalid, c.Name+" already owns this patient.")
	}
	if err := f.Store.Transfer(ctx, p.ID, c.ID); errors.Is(err, store.ErrInvalid) {
		return false, &Error{Code: Invalid, Message: "The patient cannot be transferred to that colleague.", Err: err}
	} else if err != nil {
		return false, err
	}
	f.audit(ctx, pr.ID, p.ID, "patient.transferred", "to "+c.ID)
	after := p
	after.OwnerID = c.ID
	acc, err := f.Store.CanOpen(ctx, pr, after)
	return err == nil && acc.Allowed, nil
}

// handOver checks that pr may give patient p away (the owner only) and
// finds the colleague named by email.
func (f *Flows) handOver(ctx context.Context, pr store.Practitioner, p store.Patient, email string) (store.Practitioner, error) {
	if !pmsbridge.MayHandOver(pr.ID, p.OwnerID) {
		return store.Practitioner{}, &OwnerOnlyError{Owner: f.practitionerName(ctx, p.SubscriptionID, p.OwnerID), PatientID: p.ID}
	}
	return f.colleague(ctx, pr, email)
}

// colleague finds an active practitioner of pr's clinic by their login.
func (f *Flows) colleague(ctx context.Context, pr store.Practitioner, email string) (store.Practitioner, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return store.Practitioner{}, refuse(Invalid, "Enter your colleague's pmsbridge login email address.")
	}
	c, err := f.Store.PractitionerByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
		return c, err
	}
	if err != nil || c.SubscriptionID != pr.SubscriptionID {
		return c, refuse(Invalid, "No colleague in your clinic logs in with "+email+". Check the address.")
	}
	if !c.Active {
		return c, refuse(Invalid, c.Name+"'s account is deactivated.")
	}
	return c, nil
}

// practitionerName is the name of practitioner id of subscription subID, ""
// when it cannot be read.
func (f *Flows) practitionerName(ctx context.Context, subID, id string) string {
	ps, err := f.Store.ListPractitioners(ctx, subID)
	if err != nil {
		return ""
	}
	for _, p := range ps {
		if p.ID == id {
			return p.Name
		}
	}
	return ""
}
