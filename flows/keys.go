package flows

import (
	"context"
	"errors"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// KeySaved is what saving a Cliniko key did.
type KeySaved struct {
	// User is the Cliniko user the key belongs to, with its account.
	User store.ClinikoUser
	// Replayed counts the failed jobs queued again because this key can
	// serve them (ReplayFixedBy).
	Replayed int
	// TimeZoneFilled: the clinic had no time zone of its own and took
	// another one from its Cliniko businesses (times are now shown in it).
	TimeZoneFilled bool
}

// SaveKey checks a practitioner's Cliniko API key and saves it with what it
// belongs to: what cannot be a key is refused without asking Cliniko
// (cliniko.CheckKeyShape); Cliniko says whose it is (GET /user) and which
// account (GET /businesses, keyaccount.go); when that cannot be compared
// with the account the clinic's patients come from while the clinic has
// linked patients on the key's shard, one of them is read with the key
// (one request) to find out. The clinic adopts the account when it is its
// own (the first key claims it; its time zone fills the clinic's when none
// was set). Then every failed job this key can serve runs again
// (ReplayFixedBy). A key that cannot be used is *Error Invalid, in the
// cause table's words for what Cliniko said (Clinician.KeyCheck); nothing
// is saved then, and a key saved before stays in use.
func (f *Flows) SaveKey(ctx context.Context, pr store.Practitioner, key string) (KeySaved, error) {
	if err := cliniko.CheckKeyShape(key); err != nil {
		var e *cliniko.KeyShapeError
		errors.As(err, &e)
		return KeySaved{}, &Error{Code: Invalid, Message: e.Message, Err: err}
	}
	shard, err := cliniko.ShardFromKey(key)
	if err != nil {
		return KeySaved{}, &Error{Code: Invalid, Message: cliniko.BadShardMessage, Err: err}
	}
	cctx := jobs.WithActor(ctx, pr.ID, "")
	u, err := f.Cliniko.GetUser(cctx, cliniko.Auth{Key: key})
	if err != nil {
		cause := pmsbridge.CauseOf(err)
		words := cause.Info().Clinician.KeyCheck
		if words == "" {
			f.logger(ctx).Warn("check cliniko key", "cause", cause)
			words = pmsbridge.CauseInternal.Info().Clinician.KeyCheck
		}
		return KeySaved{}, &Error{Code: Invalid, Message: words, Err: err}
	}
	auth := cliniko.Auth{Key: key, UserID: u.ID}
	cu := store.ClinikoUser{ID: u.ID, Name: u.Name(), Email: u.Email, Role: u.Role, Shard: shard}
	cu.Account = f.keyAccount(cctx, auth, shard)
	cu.ClinicProbe = f.probeClinic(cctx, pr.SubscriptionID, auth, cu)
	if err := f.Store.SetClinikoKey(ctx, pr.ID, key, cu); err != nil {
		return KeySaved{}, err
	}
	saved := KeySaved{User: cu}
	if cu.ClinicProbe != store.ProbeNotFound {
		before := f.clinicTime(ctx, pr.SubscriptionID).Location().String()
		if f.adoptKeyAccount(ctx, pr.SubscriptionID, cu.Account).TimeZoneFilled {
			saved.TimeZoneFilled = f.clinicTime(ctx, pr.SubscriptionID).Location().String() != before
		}
	}
	// The replays are the key's doing, in the jobs' history.
	replayCtx := store.ActingAs(ctx, store.Actor{Via: store.ViaKeySaved, Who: pr.Email})
	if saved.Replayed, err = f.ReplayFixedBy(replayCtx, pr, cu); err != nil {
		// The key is saved; support can replay what is left.
		f.logger(ctx).Warn("replay after key saved", "err", err)
	}
	return saved, nil
}

// ReplayCauses are the causes of the failed jobs that a newly saved, working
// key of a Cliniko user with role can fix: a rejected or missing key, and a
// role that may not upload when this one may.
func ReplayCauses(role string) []pmsbridge.Cause {
	causes := []pmsbridge.Cause{pmsbridge.CauseClinikoUnauthorized, pmsbridge.CauseNoClinikoKey}
	if cliniko.CanUpload(role) {
		causes = append(causes, pmsbridge.CauseClinikoForbidden)
	}
	return causes
}

// uploadFixCauses are the causes of a failed PDF upload that another key
// can fix: no usable key, a rejected key, a role that may not upload, and a
// key of another account than the patient's (Cliniko did not find them).
var uploadFixCauses = []pmsbridge.Cause{pmsbridge.CauseNoClinikoKey, pmsbridge.CauseClinikoUnauthorized,
	pmsbridge.CauseClinikoForbidden, pmsbridge.CauseClinikoNotFound}

// ReplayFixedBy runs again every job that failed for good and that the key
// just saved for pr (of Cliniko user cu) can now serve, and reports how
// many: pr's own imports, refreshes and syncs that failed for key reasons
// (ReplayCauses); and the PDF uploads, whoever assigned them, of patients
// pr assigned to or owns, for which pr's key is now the one that sends
// the PDF (jobs.ChooseUploader picks it, with nothing in the way) — so a
// patient's owner who fixes their key sends the PDFs a colleague's key
// could not.
func (f *Flows) ReplayFixedBy(ctx context.Context, pr store.Practitioner, cu store.ClinikoUser) (int, error) {
	n, err := f.Jobs.ReplayMatching(ctx, jobs.ReplayFilter{PractitionerID: pr.ID, Causes: ReplayCauses(cu.Role),
		Types: []string{jobs.TypeImportPatient, jobs.TypeRefreshPatient, jobs.TypeSyncPractitioner}})
	if err != nil {
		return n, err
	}
	uploads, err := f.Jobs.Matching(ctx, jobs.ReplayFilter{Type: jobs.TypeUploadPDF, Causes: uploadFixCauses})
	if err != nil {
		return n, err
	}
	patients := map[string]*store.Patient{}
	for _, x := range uploads {
		p, ok := patients[x.PatientID]
		if !ok {
			got, err := f.Store.GetPatient(ctx, x.PatientID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return n, err
			}
			if err == nil && got.SubscriptionID == pr.SubscriptionID {
				p = &got
			}
			patients[x.PatientID] = p
		}
		if p == nil || p.OwnerID != pr.ID && x.PractitionerID != pr.ID {
			continue
		}
		u, err := jobs.ChooseUploader(ctx, f.Store, x.PractitionerID, *p)
		if err != nil {
			return n, err
		}
		if u.PractitionerID != pr.ID || u.Cause != "" {
			continue
		}
		if err := f.Jobs.Replay(ctx, x); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// RemoveKey deletes a practitioner's saved Cliniko key.
func (f *Flows) RemoveKey(ctx context.Context, pr store.Practitioner) error {
	return f.Store.DeleteClinikoKey(ctx, pr.ID)
}
