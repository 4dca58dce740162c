package jobs

import (
	"context"
	"errors"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/store"
)

// Uploader is whose Cliniko key sends a programme version's PDF to the
// patient's Cliniko files, and what stands in the way: the one rule that
// the upload job follows and that pages use to say, before and after
// assigning, what will happen (flows.PDFOutlook).
type Uploader struct {
	// PractitionerID is whose key is used ("" when none can be: Cause says
	// why).
	PractitionerID string
	// User is the Cliniko user of that key, as saved.
	User store.ClinikoUser
	// Owner says the key is the patient's owner's, not the assigning
	// practitioner's (whose key is missing or cannot serve this patient).
	Owner bool
	// Cause is why the PDF cannot be sent as things stand ("" when it can):
	// not_linked (the patient has no Cliniko link); no_cliniko_key (neither
	// the assigner nor the owner has a key for the patient's Cliniko
	// account); cliniko_forbidden (the only usable key's Cliniko role may
	// not upload files: the upload is still tried with it, as the role may
	// have changed in Cliniko since the key was saved); cliniko_not_found
	// (Cliniko showed the patient as archived or deleted at the last look:
	// the upload is tried, and fails until the patient is unarchived).
	Cause pmsbridge.Cause
	// Skipped are the keys passed over, with why (for the words).
	Skipped []SkippedKey
}

// SkippedKey is a key that cannot send a patient's PDF.
type SkippedKey struct {
	PractitionerID string
	User           store.ClinikoUser
	// Why: no_cliniko_key (none saved, or the practitioner is deactivated),
	// cliniko_unauthorized (a key of another Cliniko region than the
	// patient's), cliniko_not_found (a key of another Cliniko account than
	// the patient's), cliniko_forbidden (its role may not upload files).
	Why pmsbridge.Cause
}

// ChooseUploader picks the key that sends patient p's programme PDFs
// assigned by assignerID: the first of the assigner's and the owner's keys
// that belongs to the patient's Cliniko account (shard and account) and
// whose Cliniko role may upload files (cliniko.CanUpload); when neither may
// upload, the first of the patient's account (Cause cliniko_forbidden).
func ChooseUploader(ctx context.Context, st *store.Store, assignerID string, p store.Patient) (Uploader, error) {
	if p.Link == nil {
		return Uploader{Cause: pmsbridge.CauseNotLinked}, nil
	}
	clinic, err := st.SubscriptionClinikoAccounts(ctx, p.SubscriptionID)
	if err != nil {
		return Uploader{}, err
	}
	var u Uploader
	var fallback *Uploader
	for i, id := range []string{assignerID, p.OwnerID} {
		if id == "" || i == 1 && id == assignerID {
			continue
		}
		skip := SkippedKey{PractitionerID: id, Why: pmsbridge.CauseNoClinikoKey}
		pr, err := st.GetPractitioner(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return Uploader{}, err
		}
		cu, ok, err := st.ClinikoUserOf(ctx, id)
		if err != nil {
			return Uploader{}, err
		}
		skip.User = cu
		switch {
		case !ok || !pr.Active || pr.SubscriptionID != p.SubscriptionID:
		case cu.Shard != p.Link.Shard:
			skip.Why = pmsbridge.CauseClinikoUnauthorized
		case store.MatchAccount(cu, clinic) == store.AccountOther:
			skip.Why = pmsbridge.CauseClinikoNotFound
		case !cliniko.CanUpload(cu.Role):
			skip.Why = pmsbridge.CauseClinikoForbidden
			if fallback == nil {
				fallback = &Uploader{PractitionerID: id, User: cu, Owner: i == 1, Cause: pmsbridge.CauseClinikoForbidden}
			}
		default:
			u = Uploader{PractitionerID: id, User: cu, Owner: i == 1, Skipped: u.Skipped}
			if p.Link.ArchivedInCliniko {
				u.Cause = pmsbridge.CauseClinikoNotFound
			}
			return u, nil
		}
		u.Skipped = append(u.Skipped, skip)
	}
	if fallback != nil {
		fallback.Skipped = u.Skipped
		return *fallback, nil
	}
	u.Cause = pmsbridge.CauseNoClinikoKey
	return u, nil
}
