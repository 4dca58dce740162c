package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// Failure is the failure ledger's record of a job that failed: permanently
// (asynq archived it) or on an attempt that will be retried. asynq keeps at
// most 10,000 archived tasks per queue and drops the oldest silently; this
// ledger keeps every failure until the job succeeds or support deletes it.
// It holds ids only, no patient details (the Cliniko user's name and role
// are staff, as Cliniko reported them when the key was saved).
type Failure struct {
	TaskID           string          `json:"id"`
	Queue            string          `json:"queue"`
	Type             string          `json:"type"`
	Permanent        bool            `json:"permanent"` // archived: will not be retried by itself
	Cause            pmsbridge.Cause `json:"cause"`
	Reason           string          `json:"reason"`
	PractitionerID   string          `json:"practitioner_id,omitempty"`
	SubscriptionID   string          `json:"subscription_id,omitempty"` // when the payload names it (imports)
	PatientID        string          `json:"patient_id,omitempty"`
	ProgrammeID      string          `json:"programme_id,omitempty"`
	Version          int             `json:"version,omitempty"`
	ClinikoPatientID string          `json:"cliniko_patient_id,omitempty"`
	// KeyUser is whose Cliniko key the last failed attempt used; nil when
	// it used none (nobody had a key) or was recorded before this field.
	KeyUser       *KeyUser  `json:"key_user,omitempty"`
	Attempts      int       `json:"attempts"`
	FirstFailedAt time.Time `json:"first_failed_at"`
	LastFailedAt  time.Time `json:"last_failed_at"`
	// Replayed is the last replay, kept until the job succeeds (then it is
	// "recently recovered").
	Replayed *Replay `json:"replayed,omitempty"`
	Payload  []byte  `json:"payload,omitempty"` // the task payload (ids only), to re-create it
}

// KeyUser is whose Cliniko API key an attempt used: the practitioner whose
// saved key it is, and the Cliniko user it belongs to with the name and
// role Cliniko gave when the key was saved. Never the key itself.
type KeyUser struct {
	PractitionerID string `json:"practitioner_id"`
	ClinikoUserID  string `json:"cliniko_user_id"`
	Name           string `json:"name"`
	Role           string `json:"role"`
}

// Replay is when a job was run again, and at whose request.
type Replay struct {
	At time.Time `json:"at"`
	By Actor     `json:"by"`
}

// FailureFilter selects ledger entries. Zero fields match everything.
type FailureFilter struct {
	Type           string
	Cause          pmsbridge.Cause
	PractitionerID string
	// SubscriptionID selects a clinic's jobs: those whose payload names it
	// or whose practitioner is one of its practitioners.
	SubscriptionID string
	Since          time.Time
	// MinAttempts lists retrying (not yet permanent) failures only once
	// they reached this many attempts. Default 3; negative: all.
	MinAttempts int
	// PermanentOnly leaves out failures that are still being retried.
	PermanentOnly bool
}

// match reports whether f selects x; pracs are the practitioners of
// f.SubscriptionID (subscriptionPractitioners).
func (f FailureFilter) match(x Failure, pracs map[string]bool) bool {
	min := f.MinAttempts
	if min == 0 {
		min = 3
	}
	switch {
	case f.Type != "" && x.Type != f.Type,
		f.Cause != "" && x.Cause != f.Cause,
		f.PractitionerID != "" && x.PractitionerID != f.PractitionerID,
		f.SubscriptionID != "" && x.SubscriptionID != f.SubscriptionID && (x.SubscriptionID != "" || !pracs[x.PractitionerID]),
		!f.Since.IsZero() && x.LastFailedAt.Before(f.Since),
		f.PermanentOnly && !x.Permanent,
		!x.Permanent && x.Attempts < min:
		return false
	}
	return true
}

// subscriptionPractitioners returns the set of a subscription's
// practitioners (nil for no subscription).
func (s *Store) subscriptionPractitioners(ctx context.Context, subID string) (map[string]bool, error) {
	if subID == "" {
		return nil, nil
	}
	set := map[string]bool{}
	if !validID(subID) {
		return set, nil
	}
	ids, err := s.rdb.SMembers(ctx, s.key("sub", subID, "pracs")).Result()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

func (s *Store) failureKey(taskID string) string { return s.key("failure", taskID) }
func (s *Store) failureIndex() string            { return s.key("failures") }

// RecordFailure records a failed attempt: it adds or updates the ledger
// entry of f.TaskID (the first failure time and the last replay are kept;
// LastFailedAt defaults to now), adds the attempt to the job's history and
// to the hour's failure count, and takes the job off the recently
// recovered list if it was there.
func (s *Store) RecordFailure(ctx context.Context, f Failure) error {
	if f.TaskID == "" {
		return invalid("failure", "task id is empty")
	}
	if f.LastFailedAt.IsZero() {
		f.LastFailedAt = s.now()
	}
	prev, err := s.GetFailure(ctx, f.TaskID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("record failure: %w", err)
	}
	f.FirstFailedAt = prev.FirstFailedAt
	if f.FirstFailedAt.IsZero() {
		f.FirstFailedAt = f.LastFailedAt
	}
	if f.Replayed == nil {
		f.Replayed = prev.Replayed
	}
	count := s.failureCountKey(f.LastFailedAt)
	pipe := s.rdb.Pipeline()
	s.putFailure(ctx, pipe, f)
	pipe.HIncrBy(ctx, count, string(f.Cause), 1)
	pipe.Expire(ctx, count, failureCountDays*24*time.Hour)
	pipe.ZRem(ctx, s.recoveredIndex(), f.TaskID)
	pipe.Del(ctx, s.recoveredKey(f.TaskID))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	return s.addEvent(ctx, f.TaskID, JobEvent{Kind: EventFailed, At: f.LastFailedAt, Attempt: f.Attempts,
		Permanent: f.Permanent, Cause: f.Cause, Reason: f.Reason, KeyUser: f.KeyUser})
}

// putFailure queues the writes of a ledger entry and its index.
func (s *Store) putFailure(ctx context.Context, pipe redis.Pipeliner, f Failure) {
	pipe.Set(ctx, s.failureKey(f.TaskID), mustJSON(f), 0)
	pipe.ZAdd(ctx, s.failureIndex(), redis.Z{Score: float64(f.LastFailedAt.UnixMilli()), Member: f.TaskID})
}

// MarkReplayed resets a job's ledger entry for a replay (not permanent,
// no attempts yet, Replayed now by the actor of ctx, see ActingAs) and adds
// the replay to its history. It returns the entry as written.
func (s *Store) MarkReplayed(ctx context.Context, f Failure) (Failure, error) {
	by := ActorOf(ctx)
	f.Permanent, f.Attempts = false, 0
	f.Replayed = &Replay{At: s.now(), By: by}
	pipe := s.rdb.Pipeline()
	s.putFailure(ctx, pipe, f)
	if _, err := pipe.Exec(ctx); err != nil {
		return f, fmt.Errorf("mark replayed: %w", err)
	}
	return f, s.addEvent(ctx, f.TaskID, JobEvent{Kind: EventReplayed, At: f.Replayed.At, By: &by})
}

// RestoreFailure puts back a ledger entry as it was before a replay that
// could not queue the task, and says so in the job's history.
func (s *Store) RestoreFailure(ctx context.Context, f Failure) error {
	pipe := s.rdb.Pipeline()
	s.putFailure(ctx, pipe, f)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("restore failure: %w", err)
	}
	return s.addEvent(ctx, f.TaskID, JobEvent{Kind: EventReplayFailed, Reason: "The task could not be queued again; nothing changed."})
}

// ClearFailure records that a job succeeded: its ledger entry goes, the
// success joins its history, and a job that had been replayed is listed
// as recently recovered for Options.RecoveredFor. A job with no entry
// (it never failed) leaves no trace.
func (s *Store) ClearFailure(ctx context.Context, taskID string) error {
	b, err := s.rdb.GetDel(ctx, s.failureKey(taskID)).Bytes()
	if errors.Is(err, redis.Nil) {
		// No entry: normally nothing to do, but an index entry whose
		// record was removed half-way is dropped too.
		if err := s.rdb.ZRem(ctx, s.failureIndex(), taskID).Err(); err != nil {
			return fmt.Errorf("clear failure: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear failure: %w", err)
	}
	var f Failure
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("clear failure: %w", err)
	}
	now := s.now()
	pipe := s.rdb.Pipeline()
	pipe.ZRem(ctx, s.failureIndex(), taskID)
	if f.Replayed != nil {
		pipe.Set(ctx, s.recoveredKey(taskID), mustJSON(Recovered{Failure: f, RecoveredAt: now}), s.opts.RecoveredFor)
		pipe.ZAdd(ctx, s.recoveredIndex(), redis.Z{Score: float64(now.UnixMilli()), Member: taskID})
		pipe.ZRemRangeByScore(ctx, s.recoveredIndex(), "-inf", "("+strconv.FormatInt(now.Add(-s.opts.RecoveredFor).UnixMilli(), 10))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("clear failure: %w", err)
	}
	return s.addEvent(ctx, taskID, JobEvent{Kind: EventSucceeded, At: now})
}

// DeleteFailure removes a job's ledger entry because support gave up on
// it (by the actor of ctx, see ActingAs), and says so in its history.
// Deleting an absent entry is not an error and leaves no trace.
func (s *Store) DeleteFailure(ctx context.Context, taskID string) error {
	pipe := s.rdb.Pipeline()
	del := pipe.Del(ctx, s.failureKey(taskID))
	pipe.ZRem(ctx, s.failureIndex(), taskID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete failure: %w", err)
	}
	if del.Val() == 0 {
		return nil
	}
	by := ActorOf(ctx)
	return s.addEvent(ctx, taskID, JobEvent{Kind: EventDeleted, By: &by})
}

// GetFailure returns a task's ledger entry (ErrNotFound when none).
func (s *Store) GetFailure(ctx context.Context, taskID string) (Failure, error) {
	var f Failure
	if err := getJSON(ctx, s.rdb, s.failureKey(taskID), &f); err != nil {
		return f, fmt.Errorf("failure %s: %w", taskID, err)
	}
	return f, nil
}

// ListFailures returns the ledger entries that match, newest first.
func (s *Store) ListFailures(ctx context.Context, f FailureFilter) ([]Failure, error) {
	from := "-inf"
	if !f.Since.IsZero() {
		from = fmt.Sprint(f.Since.UnixMilli())
	}
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.failureIndex(), &redis.ZRangeBy{Min: from, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("list failures: %w", err)
	}
	pracs, err := s.subscriptionPractitioners(ctx, f.SubscriptionID)
	if err != nil {
		return nil, fmt.Errorf("list failures: %w", err)
	}
	out := []Failure{}
	for start := 0; start < len(ids); start += 500 {
		end := min(start+500, len(ids))
		keys := make([]string, 0, end-start)
		for _, id := range ids[start:end] {
			keys = append(keys, s.failureKey(id))
		}
		batch, err := getMany[Failure](ctx, s.rdb, keys)
		if err != nil {
			return nil, fmt.Errorf("list failures: %w", err)
		}
		for _, x := range batch {
			if f.match(x, pracs) {
				out = append(out, x)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastFailedAt.After(out[j].LastFailedAt) })
	return out, nil
}

// CountFailures returns the ledger's size (every entry, retrying included).
func (s *Store) CountFailures(ctx context.Context) (int64, error) {
	return s.rdb.ZCard(ctx, s.failureIndex()).Result()
}
