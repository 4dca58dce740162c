package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge/store"
)

// JobJSON is a failed job as the admin API and `pmsbridge jobs failed
// --json` show it (the contract's shape; fields may be added).
type JobJSON struct {
	ID             string    `json:"id"`
	Queue          string    `json:"queue"`
	Type           string    `json:"type"`
	State          string    `json:"state"` // failed (permanent) or retrying
	Cause          string    `json:"cause"`
	Reason         string    `json:"reason"`
	PractitionerID string    `json:"practitioner_id"`
	PatientID      string    `json:"patient_id"`
	ProgrammeID    string    `json:"programme_id"`
	Version        int       `json:"version,omitempty"`
	Attempts       int       `json:"attempts"`
	FirstFailedAt  time.Time `json:"first_failed_at"`
	LastFailedAt   time.Time `json:"last_failed_at"`
}

// ToJSON converts a ledger entry.
func ToJSON(f store.Failure) JobJSON {
	state := "retrying"
	if f.Permanent {
		state = "failed"
	}
	return JobJSON{ID: f.TaskID, Queue: f.Queue, Type: f.Type, State: state, Cause: string(f.Cause), Reason: f.Reason,
		PractitionerID: f.PractitionerID, PatientID: f.PatientID, ProgrammeID: f.ProgrammeID, Version: f.Version,
		Attempts: f.Attempts, FirstFailedAt: f.FirstFailedAt, LastFailedAt: f.LastFailedAt}
}

// Stat counts a queue's tasks of one type by state.
type Stat struct {
	Queue     string `json:"queue"`
	Type      string `json:"type"`
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retrying  int    `json:"retrying"`
	Failed    int    `json:"failed"`
	DoneToday int    `json:"done_today"`
}

// statScanLimit bounds how many tasks per queue and state are read to count
// them by type.
const statScanLimit = 20000

// Stats counts tasks per queue and type in every state, and those done
// today (UTC).
func (c *Client) Stats(ctx context.Context) ([]Stat, error) {
	byKey := map[[2]string]*Stat{}
	get := func(q, t string) *Stat {
		k := [2]string{q, t}
		if byKey[k] == nil {
			byKey[k] = &Stat{Queue: q, Type: t}
		}
		return byKey[k]
	}
	queues, err := c.insp.queues(ctx)
	if err != nil {
		return nil, fmt.Errorf("queues: %w", err)
	}
	for _, q := range queues {
		for _, st := range []struct {
			list lister
			inc  func(*Stat)
		}{
			{c.insp.a.ListPendingTasks, func(s *Stat) { s.Pending++ }},
			{c.insp.a.ListActiveTasks, func(s *Stat) { s.Active++ }},
			{c.insp.a.ListScheduledTasks, func(s *Stat) { s.Scheduled++ }},
			{c.insp.a.ListRetryTasks, func(s *Stat) { s.Retrying++ }},
			{c.insp.a.ListArchivedTasks, func(s *Stat) { s.Failed++ }},
		} {
			for page := 1; page*1000 <= statScanLimit; page++ {
				tasks, err := c.insp.list(ctx, st.list, q, asynq.PageSize(1000), asynq.Page(page))
				if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
					return nil, err
				}
				for _, t := range tasks {
					st.inc(get(q, t.Type))
				}
				if len(tasks) < 1000 {
					break
				}
			}
		}
	}
	done, err := c.st.DoneToday(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range done {
		get(d.Queue, d.Type).DoneToday = d.N
	}
	out := make([]Stat, 0, len(byKey))
	for _, s := range byKey {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Queue != out[j].Queue {
			return out[i].Queue < out[j].Queue
		}
		return out[i].Type < out[j].Type
	})
	return out, nil
}
