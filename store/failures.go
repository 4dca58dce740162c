package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// Failure is the failure ledger's record of a job that failed: permanently
// (asynq archived it) or on an attempt that will be retried. asynq keeps at
// most 10,000 archived tasks per queue and drops the oldest silently; this
// ledger keeps every failure until the job succeeds or support deletes it.
// It holds ids only, no patient details.
type Failure struct {
	TaskID           string          `json:"id"`
	Queue            string          `json:"queue"`
	Type             string          `json:"type"`
	Permanent        bool            `json:"permanent"` // archived: will not be retried by itself
	Cause            pmsbridge.Cause `json:"cause"`
	Reason           string          `json:"reason"`
	PractitionerID   string          `json:"practitioner_id,omitempty"`
	PatientID        string          `json:"patient_id,omitempty"`
	ProgrammeID      string          `json:"programme_id,omitempty"`
	Version          int             `json:"version,omitempty"`
	ClinikoPatientID string          `json:"cliniko_patient_id,omitempty"`
	Attempts         int             `json:"attempts"`
	FirstFailedAt    time.Time       `json:"first_failed_at"`
	LastFailedAt     time.Time       `json:"last_failed_at"`
	Payload          []byte          `json:"payload,omitempty"` // the task payload (ids only), to re-create it
}

// FailureFilter selects ledger entries. Zero fields match everything.
type FailureFilter struct {
	Type           string
	Cause          pmsbridge.Cause
	PractitionerID string
	Since          time.Time
	// MinAttempts lists retrying (not yet permanent) failures only once
	// they reached this many attempts. Default 3.
	MinAttempts int
	// PermanentOnly leaves out failures that are still being retried.
	PermanentOnly bool
}

func (f FailureFilter) match(x Failure) bool {
	min := f.MinAttempts
	if min == 0 {
		min = 3
	}
	switch {
	case f.Type != "" && x.Type != f.Type,
		f.Cause != "" && x.Cause != f.Cause,
		f.PractitionerID != "" && x.PractitionerID != f.PractitionerID,
		!f.Since.IsZero() && x.LastFailedAt.Before(f.Since),
		f.PermanentOnly && !x.Permanent,
		!x.Permanent && x.Attempts < min:
		return false
	}
	return true
}

func (s *Store) failureKey(taskID string) string { return s.key("failure", taskID) }
func (s *Store) failureIndex() string            { return s.key("failures") }

// RecordFailure adds or updates the ledger entry of f.TaskID. The first
// failure time is kept; LastFailedAt defaults to now.
func (s *Store) RecordFailure(ctx context.Context, f Failure) error {
	if f.TaskID == "" {
		return invalid("failure", "task id is empty")
	}
	if f.LastFailedAt.IsZero() {
		f.LastFailedAt = s.now()
	}
	key := s.failureKey(f.TaskID)
	var prev Failure
	if err := getJSON(ctx, s.rdb, key, &prev); err == nil {
		f.FirstFailedAt = prev.FirstFailedAt
	} else if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("record failure: %w", err)
	}
	if f.FirstFailedAt.IsZero() {
		f.FirstFailedAt = f.LastFailedAt
	}
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, key, mustJSON(f), 0)
	pipe.ZAdd(ctx, s.failureIndex(), redis.Z{Score: float64(f.LastFailedAt.UnixMilli()), Member: f.TaskID})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record failure: %w", err)
	}
	return nil
}

// ClearFailure removes a task's ledger entry (when it succeeded, or support
// deleted it). Clearing an absent entry is not an error.
func (s *Store) ClearFailure(ctx context.Context, taskID string) error {
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.failureKey(taskID))
	pipe.ZRem(ctx, s.failureIndex(), taskID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("clear failure: %w", err)
	}
	return nil
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
			if f.match(x) {
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
