package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/store"
)

// TypeSyncTick starts one round of the birth-year sync; the scheduler of
// every work process enqueues it each interval and only the first of a
// period runs. Never rename.
const TypeSyncTick = "sync:tick"

// TypeSyncAccount pulls the patients changed in one Cliniko account (a
// subscription on a Cliniko shard) since the account's watermark, with one
// working key of that account, and updates the account's linked patients.
// The tick enqueues one per account per period, so the sync's cost grows
// with the number of clinics, not of practitioners. Never rename.
const TypeSyncAccount = "sync:account"

// TypeSyncPractitioner is the per-practitioner sync of older versions. A
// task of this type (queued by an older process during a rolling upgrade, or
// replayed from an old ledger entry) is turned into its practitioner's
// account sync for the same period. Never rename.
const TypeSyncPractitioner = "sync:practitioner"

// AccountSyncPayload names the account to sync.
type AccountSyncPayload struct {
	SubscriptionID string `json:"subscription_id"`
	Shard          string `json:"shard"`
	Period         int64  `json:"period"` // unix seconds of the period's start
	// PractitionerID, when set, is whose key is tried first: a replay of
	// the ledger entry that says this practitioner's key was refused, so a
	// fixed key clears it.
	PractitionerID string `json:"practitioner_id,omitempty"`
}

// SyncPayload is the payload of TypeSyncPractitioner.
type SyncPayload struct {
	PractitionerID string `json:"practitioner_id"`
	Period         int64  `json:"period"` // unix seconds of the period's start
}

// firstSyncLookback is how far back an account's first sync looks
// (patients imported earlier were read fresh at import).
const firstSyncLookback = 7 * 24 * time.Hour

// NewSyncTickTask is the scheduler's periodic task.
func NewSyncTickTask() *asynq.Task { return asynq.NewTask(TypeSyncTick, nil) }

// RunSyncNow enqueues a tick now (support tooling and tests).
func (c *Client) RunSyncNow(ctx context.Context) error {
	_, err := c.c.EnqueueContext(ctx, NewSyncTickTask(), TaskOptions(TypeSyncTick)...)
	return err
}

// AccountSyncTaskID is the task id of an account's sync in a period: one
// per account per period, whoever enqueues it.
func AccountSyncTaskID(subscriptionID, shard string, period int64) string {
	return fmt.Sprintf("sync:%s:%s:%d", subscriptionID, shard, period)
}

// accountLedgerID is the failure ledger's one entry for an account's sync,
// whatever the period (see ledgerID).
func accountLedgerID(subscriptionID, shard string) string {
	return "sync:" + subscriptionID + ":" + shard
}

// KeyLedgerID is the failure ledger's entry that says a practitioner's key
// was refused by Cliniko during a sync (another key of the account was used
// instead). It names the practitioner, so their key's fault shows in
// `jobs failed --practitioner` and saving a new key replays it.
func KeyLedgerID(practitionerID string) string { return "sync:key:" + practitionerID }

// enqueueAccountSync queues an account's sync for a period, joining the one
// already queued.
func (c *Client) enqueueAccountSync(ctx context.Context, p AccountSyncPayload) error {
	_, err := c.enqueue(ctx, asynq.NewTask(TypeSyncAccount, mustPayload(p)), AccountSyncTaskID(p.SubscriptionID, p.Shard, p.Period))
	return err
}

func (h *Handlers) syncTick(ctx context.Context, t *asynq.Task) error {
	interval := h.SyncInterval
	period := h.Now().UTC().Truncate(interval)
	first, err := h.Store.ClaimPeriod(ctx, "sync", period, 2*interval)
	if err != nil {
		return err
	}
	if !first {
		return nil // another work process ran this period's sync
	}
	accounts, err := h.Store.SubscriptionShards(ctx)
	if err != nil {
		return err
	}
	for _, a := range accounts {
		if err := h.Client.enqueueAccountSync(ctx, AccountSyncPayload{SubscriptionID: a.SubscriptionID, Shard: a.Shard, Period: period.Unix()}); err != nil {
			return err
		}
	}
	return nil
}

// syncPractitioner turns an old per-practitioner task into the account sync
// of that practitioner's key for the same period (joining it when the
// period's tick already queued it).
func (h *Handlers) syncPractitioner(ctx context.Context, t *asynq.Task) error {
	var p SyncPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	pr, err := h.Store.GetPractitioner(ctx, p.PractitionerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // gone since: nothing to sync for them
	} else if err != nil {
		return err
	}
	u, ok, err := h.Store.ClinikoUserOf(ctx, pr.ID)
	if err != nil || !ok || !pr.Active {
		return err // no key (or no longer active): nothing to sync
	}
	return h.Client.enqueueAccountSync(ctx, AccountSyncPayload{SubscriptionID: pr.SubscriptionID, Shard: u.Shard, Period: p.Period})
}

// syncKeyOrder is the order in which an account's keys are tried: the
// preferred practitioner's first (a replay for their key), then the
// administrators', then the others (by practitioner id within each);
// keys Cliniko refused in an earlier sync come after the rest, so a broken
// key does not cost a refused request every period.
func syncKeyOrder(holders []store.KeyHolder, preferred string, refusedBefore func(string) bool) []store.KeyHolder {
	rank := func(k store.KeyHolder) int {
		switch {
		case k.PractitionerID == preferred:
			return 0
		case refusedBefore(k.PractitionerID):
			return 3
		case cliniko.IsAdministrator(k.User.Role):
			return 1
		default:
			return 2
		}
	}
	out := slices.Clone(holders)
	slices.SortStableFunc(out, func(a, b store.KeyHolder) int { return rank(a) - rank(b) })
	return out
}

// keyRefused reports whether Cliniko's answer says this key cannot serve
// the sync (revoked, wrong shard, or a role that may not list patients),
// so the next key of the account should be tried.
func keyRefused(err error) bool {
	c := pmsbridge.CauseOf(err)
	return c == pmsbridge.CauseClinikoUnauthorized || c == pmsbridge.CauseClinikoForbidden
}

func (h *Handlers) syncAccount(ctx context.Context, t *asynq.Task) error {
	var p AccountSyncPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	holders, err := h.Store.AccountKeyHolders(ctx, p.SubscriptionID, p.Shard)
	if errors.Is(err, store.ErrInvalid) {
		return &pmsbridge.Error{Cause: pmsbridge.CauseInvalidPayload, Message: "The task names no valid Cliniko account.", Err: err}
	}
	if err != nil {
		return err
	}
	if p.PractitionerID != "" && !slices.ContainsFunc(holders, func(k store.KeyHolder) bool { return k.PractitionerID == p.PractitionerID }) {
		// The key the entry was about is gone (removed, or replaced by one
		// of another account): nothing is left to say about it.
		if err := h.Store.ClearFailure(ctx, KeyLedgerID(p.PractitionerID)); err != nil {
			return err
		}
	}
	if len(holders) == 0 {
		return nil // every key was removed since the tick: nothing to sync
	}
	refusedBefore := func(id string) bool {
		f, err := h.Store.GetFailure(ctx, KeyLedgerID(id))
		return err == nil && f.Permanent
	}
	var refused []error
	for _, k := range syncKeyOrder(holders, p.PractitionerID, refusedBefore) {
		key, cu, err := h.Store.ClinikoKey(ctx, k.PractitionerID)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed since the holders were read
		}
		if err != nil {
			return err
		}
		if cu.Shard != p.Shard {
			continue // replaced since by a key of another account
		}
		err = h.pullChanges(ctx, p, k.PractitionerID, key, cu)
		if err == nil {
			return h.Store.ClearFailure(ctx, KeyLedgerID(k.PractitionerID))
		}
		err = withKeyUsed(err, store.Practitioner{ID: k.PractitionerID}, cu)
		if !keyRefused(err) {
			return err // Cliniko unavailable, rate limited, Redis…: retry the task
		}
		h.recordRefusedKey(ctx, p, k.PractitionerID, err)
		refused = append(refused, err)
	}
	if len(refused) == 0 {
		return nil // every key went away meanwhile
	}
	// The refusals are in the ledger entries of the keys; the account's
	// entry says that none was left.
	return &pmsbridge.Error{Cause: pmsbridge.CauseOf(refused[0]),
		Message: fmt.Sprintf("Cliniko refused every saved key of this Cliniko account (%d), so its patients could not be synced. %s", len(refused), pmsbridge.MessageOf(refused[0]))}
}

// recordRefusedKey writes the ledger entry that says a practitioner's key
// was refused in a sync, so support and the practitioner see it even though
// the sync went on with another key.
func (h *Handlers) recordRefusedKey(ctx context.Context, p AccountSyncPayload, practitionerID string, err error) {
	cause := pmsbridge.CauseOf(err)
	h.Log.Warn("cliniko key refused in the sync", "practitioner_id", practitionerID, "subscription_id", p.SubscriptionID, "shard", p.Shard, "cause", cause)
	replay := AccountSyncPayload{SubscriptionID: p.SubscriptionID, Shard: p.Shard, Period: p.Period, PractitionerID: practitionerID}
	attempts := 1
	if prev, gerr := h.Store.GetFailure(ctx, KeyLedgerID(practitionerID)); gerr == nil {
		attempts = prev.Attempts + 1
	}
	f := store.Failure{
		TaskID: KeyLedgerID(practitionerID), Queue: QueueSync, Type: TypeSyncAccount, Permanent: true,
		Cause: cause, Reason: pmsbridge.MessageOf(err) + " The periodic sync used another key of the clinic's Cliniko account instead.",
		PractitionerID: practitionerID, SubscriptionID: p.SubscriptionID, KeyUser: keyUserOf(err),
		Attempts: attempts, Payload: mustPayload(replay),
	}
	if rerr := h.Store.RecordFailure(context.WithoutCancel(ctx), f); rerr != nil {
		h.Log.Error("record refused key in the ledger", "practitioner_id", practitionerID, "err", rerr)
	}
}

// pullChanges reads the patients changed in the account since its
// watermark with one key and updates the linked ones. The watermark
// advances after each page, so a failure part-way (or a fall-back to
// another key) resumes there.
func (h *Handlers) pullChanges(ctx context.Context, p AccountSyncPayload, practitionerID, key string, cu store.ClinikoUser) error {
	since, ok, err := h.Store.SyncCursor(ctx, p.SubscriptionID, p.Shard)
	if err != nil {
		return err
	}
	if !ok {
		since = h.Now().Add(-firstSyncLookback)
	}
	auth := cliniko.Auth{Key: key, UserID: cu.ID}
	cctx := cliniko.ForJob(WithActor(ctx, practitionerID, ""), limiterMaxWait)
	for page, err := range h.Cliniko.PatientsUpdatedSince(cctx, auth, since) {
		if err != nil {
			return fmt.Errorf("sync patients changed since %s: %w", since.Format(time.RFC3339), err)
		}
		var newest time.Time
		for _, cp := range page.Patients {
			if cp.UpdatedAt.After(newest) {
				newest = cp.UpdatedAt
			}
			id, err := h.Store.FindLink(ctx, p.SubscriptionID, p.Shard, cp.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue // not one of this account's linked patients
			}
			if err != nil {
				return err
			}
			if err := h.applyRefresh(ctx, id, cp); err != nil {
				return err
			}
		}
		// Cliniko filters with ">" on whole seconds: step back a second so
		// patients updated in the same second are not skipped.
		if !newest.IsZero() {
			if err := h.Store.SetSyncCursor(ctx, p.SubscriptionID, p.Shard, newest.Add(-time.Second)); err != nil {
				return err
			}
		}
	}
	return nil
}
