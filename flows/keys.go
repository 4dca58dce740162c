package flows

import (
	"context"
	"strings"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// maxKey bounds what may be a Cliniko API key.
const maxKey = 200

// SaveKey checks a practitioner's Cliniko API key with Cliniko (GET /user)
// and saves it with the Cliniko user and account (GET /businesses) it
// belongs to, which the clinic adopts when it has none; then the practitioner's
// jobs that failed for key reasons run again (ReplayCauses). It reports how
// many were replayed. A key that cannot be used is *Error Invalid, in the
// cause table's words for what Cliniko said (Clinician.KeyCheck); nothing
// is saved then.
func (f *Flows) SaveKey(ctx context.Context, pr store.Practitioner, key string) (int, error) {
	if key == "" {
		return 0, refuse(Invalid, "Paste your Cliniko API key into the box first.")
	}
	if len(key) > maxKey || strings.ContainsAny(key, " \t\r\n") {
		return 0, refuse(Invalid, "That does not look like a Cliniko API key. Copy the whole key from Cliniko (My info → Manage API keys) and paste it again.")
	}
	shard, err := cliniko.ShardFromKey(key)
	if err != nil {
		return 0, &Error{Code: Invalid, Message: cliniko.BadShardMessage, Err: err}
	}
	u, err := f.Cliniko.GetUser(jobs.WithActor(ctx, pr.ID, ""), cliniko.Auth{Key: key})
	if err != nil {
		cause := pmsbridge.CauseOf(err)
		words := cause.Info().Clinician.KeyCheck
		if words == "" {
			f.logger(ctx).Warn("check cliniko key", "cause", cause)
			words = pmsbridge.CauseInternal.Info().Clinician.KeyCheck
		}
		return 0, &Error{Code: Invalid, Message: words, Err: err}
	}
	cu := store.ClinikoUser{ID: u.ID, Name: u.Name(), Email: u.Email, Role: u.Role, Shard: shard}
	cu.Account = f.keyAccount(jobs.WithActor(ctx, pr.ID, ""), cliniko.Auth{Key: key, UserID: u.ID}, shard)
	if err := f.Store.SetClinikoKey(ctx, pr.ID, key, cu); err != nil {
		return 0, err
	}
	f.adoptKeyAccount(ctx, pr.SubscriptionID, cu.Account)
	// The replays are the key's doing, in the jobs' history.
	replayCtx := store.ActingAs(ctx, store.Actor{Via: store.ViaKeySaved, Who: pr.Email})
	n, err := f.Jobs.ReplayMatching(replayCtx, jobs.ReplayFilter{PractitionerID: pr.ID, Causes: ReplayCauses(u.Role)})
	if err != nil {
		// The key is saved; support can replay what is left.
		f.logger(ctx).Warn("replay after key saved", "err", err)
	}
	return n, nil
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

// RemoveKey deletes a practitioner's saved Cliniko key.
func (f *Flows) RemoveKey(ctx context.Context, pr store.Practitioner) error {
	return f.Store.DeleteClinikoKey(ctx, pr.ID)
}
