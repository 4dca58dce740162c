package jobs

import (
	"context"
	"errors"
	"fmt"
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

// TypeSyncPractitioner pulls the patients changed in one practitioner's
// Cliniko account since their watermark and updates the linked ones.
// Never rename.
const TypeSyncPractitioner = "sync:practitioner"

// SyncPayload names the practitioner whose key is used.
type SyncPayload struct {
	PractitionerID string `json:"practitioner_id"`
	Period         int64  `json:"period"` // unix seconds of the period's start
}

// firstSyncLookback is how far back a practitioner's first sync looks
// (patients imported earlier were read fresh at import).
const firstSyncLookback = 7 * 24 * time.Hour

// NewSyncTickTask is the scheduler's periodic task.
func NewSyncTickTask() *asynq.Task { return asynq.NewTask(TypeSyncTick, nil) }

// RunSyncNow enqueues a tick now (support tooling and tests).
func (c *Client) RunSyncNow(ctx context.Context) error {
	_, err := c.c.EnqueueContext(ctx, NewSyncTickTask(), TaskOptions(TypeSyncTick)...)
	return err
}

func (h *Handlers) syncTick(ctx context.Context, t *asynq.Task) error {
	interval := h.SyncInterval
	period := h.Now().UTC().Truncate(interval)
	first, err := h.Store.ClaimSyncPeriod(ctx, period, 2*interval)
	if err != nil {
		return err
	}
	if !first {
		return nil // another work process ran this period's sync
	}
	ids, err := h.Store.PractitionersWithKeys(ctx)
	if err != nil {
		return fmt.Errorf("practitioners with keys: %w", err)
	}
	for _, id := range ids {
		p := SyncPayload{PractitionerID: id, Period: period.Unix()}
		if _, err := h.Client.enqueue(ctx, asynq.NewTask(TypeSyncPractitioner, mustPayload(p)), fmt.Sprintf("sync:%s:%d", id, period.Unix())); err != nil {
			return err
		}
	}
	return nil
}

// syncCursorScope is the watermark's scope: one per practitioner within
// the subscription and shard. It becomes part of a Redis key, so it may only
// hold what the store accepts in ids (letters, digits, '_', '-'); a shard
// has no '-', so "au1-prac_…" is unambiguous.
func syncCursorScope(shard, practitionerID string) string { return shard + "-" + practitionerID }

func (h *Handlers) syncPractitioner(ctx context.Context, t *asynq.Task) (err error) {
	var p SyncPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	pr, key, cu, err := h.practitionerKey(ctx, p.PractitionerID)
	if err != nil {
		if pmsbridge.CauseOf(err) == pmsbridge.CauseNoClinikoKey {
			return nil // the key was removed since the tick: nothing to sync
		}
		return err
	}
	defer func() { err = withKeyUsed(err, pr, cu) }()
	scope := syncCursorScope(cu.Shard, pr.ID)
	since, ok, err := h.Store.SyncCursor(ctx, pr.SubscriptionID, scope)
	if err != nil {
		return err
	}
	if !ok {
		since = h.Now().Add(-firstSyncLookback)
	}
	auth := cliniko.Auth{Key: key, UserID: cu.ID}
	cctx := cliniko.WithMaxWait(WithActor(ctx, pr.ID, ""), limiterMaxWait)
	for page, err := range h.Cliniko.PatientsUpdatedSince(cctx, auth, since) {
		if err != nil {
			return fmt.Errorf("sync patients changed since %s: %w", since.Format(time.RFC3339), err)
		}
		var newest time.Time
		for _, cp := range page.Patients {
			if cp.UpdatedAt.After(newest) {
				newest = cp.UpdatedAt
			}
			id, err := h.Store.FindLink(ctx, pr.SubscriptionID, cu.Shard, cp.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue // not one of our patients
			}
			if err != nil {
				return err
			}
			if err := h.applyRefresh(ctx, id, cp); err != nil {
				return err
			}
		}
		// Advance the watermark after each page, so a failure part-way
		// resumes here. Cliniko filters with ">" on whole seconds: step back
		// a second so patients updated in the same second are not skipped.
		if !newest.IsZero() {
			if err := h.Store.SetSyncCursor(ctx, pr.SubscriptionID, scope, newest.Add(-time.Second)); err != nil {
				return err
			}
		}
	}
	return nil
}
