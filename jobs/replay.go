package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// ReplayFilter selects ledger entries to replay. IDs, when given, select
// exactly those; otherwise every permanent failure matching all the other
// fields is replayed.
type ReplayFilter struct {
	IDs  []string
	Type string
	// Types, when given, selects entries of any of these types (with Type
	// too, both must hold).
	Types          []string
	Causes         []pmsbridge.Cause
	PractitionerID string
}

// ErrNotReplayable is returned for a ledger entry that cannot be re-created.
var ErrNotReplayable = errors.New("this job cannot be replayed")

// Matching returns the ledger entries that f selects.
func (c *Client) Matching(ctx context.Context, f ReplayFilter) ([]store.Failure, error) {
	st := c.st
	if len(f.IDs) > 0 {
		var out []store.Failure
		for _, id := range f.IDs {
			x, err := st.GetFailure(ctx, id)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	}
	all, err := st.ListFailures(ctx, store.FailureFilter{Type: f.Type, PractitionerID: f.PractitionerID, PermanentOnly: true})
	if err != nil {
		return nil, err
	}
	var out []store.Failure
	for _, x := range all {
		if (len(f.Causes) == 0 || slices.Contains(f.Causes, x.Cause)) && (len(f.Types) == 0 || slices.Contains(f.Types, x.Type)) {
			out = append(out, x)
		}
	}
	return out, nil
}

// ReplayMatching replays every ledger entry f selects and reports how many
// were queued again. The replays are written to each job's history as
// asked by the actor of ctx (store.ActingAs).
func (c *Client) ReplayMatching(ctx context.Context, f ReplayFilter) (int, error) {
	list, err := c.Matching(ctx, f)
	if err != nil {
		return 0, err
	}
	return c.ReplayList(ctx, list)
}

// ReplayList replays ledger entries in order and reports how many were
// queued again before an error stopped it.
func (c *Client) ReplayList(ctx context.Context, list []store.Failure) (int, error) {
	for i, x := range list {
		if err := c.Replay(ctx, x); err != nil {
			return i, fmt.Errorf("replay %s: %w", x.TaskID, err)
		}
	}
	return len(list), nil
}

// Replay queues a failed job again under its own task id, with a fresh
// retry budget, replacing asynq's archived copy (or re-creating it from the
// ledger when asynq has already dropped it). The ledger entry stays, reset,
// until the job succeeds. The job's history says the replay was asked by
// the actor of ctx (store.ActingAs; "unknown" when ctx names none).
func (c *Client) Replay(ctx context.Context, f store.Failure) error {
	st := c.st
	spec, ok := taskSpecs[f.Type]
	if !ok || len(f.Payload) == 0 && f.Type != TypeSyncTick {
		return ErrNotReplayable
	}
	// A message request is found by its payload's id.
	var message SendCodePayload
	if f.Type == TypeSendCode && (json.Unmarshal(f.Payload, &message) != nil || message.MessageID == "") {
		return ErrNotReplayable
	}
	// asynq's copy is in the queue the task ran in; the replay goes where
	// a fresh task of its type would, with the same options.
	queue := f.Queue
	if queue == "" {
		queue = spec.queue
	}
	// Reset the entry and the job's record (the PDF state, the message
	// request) before the task is queued: a worker may run it and succeed
	// (clearing the entry, recording the upload) before this call would get
	// to write them afterwards.
	if _, err := st.MarkReplayed(ctx, f); err != nil {
		return err
	}
	x := ids{ProgrammeID: f.ProgrammeID, Version: f.Version, MessageID: message.MessageID}
	if err := recordPending(ctx, st, f.Type, x); err != nil {
		return err
	}
	undo := func(err error) error {
		_ = st.RestoreFailure(context.WithoutCancel(ctx), f)
		if f.Permanent {
			_ = recordFailed(ctx, st, f.Type, x, f.Cause, f.Reason)
		}
		return err
	}
	if err := c.insp.deleteTask(ctx, queue, f.TaskID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		// Still queued or running (e.g. retrying): let it run now instead.
		if rerr := c.insp.runTask(ctx, queue, f.TaskID); rerr != nil && !errors.Is(rerr, asynq.ErrTaskNotFound) {
			return undo(fmt.Errorf("task is %v", err))
		}
	} else if _, err := c.enqueue(ctx, asynq.NewTask(f.Type, f.Payload), f.TaskID); err != nil {
		return undo(err)
	}
	return nil
}

// Delete gives up on a failed job: its ledger entry goes, and so does
// asynq's archived copy (a job still queued or running is left to run).
// The job's history says who gave up: the actor of ctx (store.ActingAs).
func (c *Client) Delete(ctx context.Context, taskID string) error {
	f, err := c.st.GetFailure(ctx, taskID)
	if err != nil {
		return err
	}
	if state, _, err := c.TaskState(ctx, f.Queue, taskID); err == nil && state == StateFailed {
		if err := c.insp.deleteTask(ctx, f.Queue, taskID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return fmt.Errorf("delete archived task: %w", err)
		}
	}
	return c.st.DeleteFailure(ctx, taskID)
}
