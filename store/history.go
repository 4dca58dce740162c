package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// Via says through what someone asked for a replay or a deletion.
type Via string

// The ways a replay or a deletion is asked for.
const (
	ViaCLI          Via = "cli"          // pmsbridge jobs replay|delete
	ViaAdminPage    Via = "admin_page"   // the support pages, with a support login
	ViaAPI          Via = "api"          // the admin API, with the bearer token
	ViaKeySaved     Via = "key_saved"    // automatically, after a practitioner saved a Cliniko key
	ViaPractitioner Via = "practitioner" // a practitioner's "send to Cliniko again"
)

// MaxActorWho is the most characters Actor.Who keeps.
const MaxActorWho = 100

// Actor says who asked for a replay or a deletion, for a job's history:
// through what (Via) and, where it is known, who (Who: the CLI's --by or
// its OS user@host, an API caller's "by", the practitioner's email). A
// support login and the bearer token name nobody, so Who is empty there
// unless the caller says.
type Actor struct {
	Via Via    `json:"via,omitempty"`
	Who string `json:"who,omitempty"`
}

// String says who, in words: "CLI (ann@desk)", "admin page",
// "automatically after a Cliniko key was saved (demo@clinic.example)".
func (a Actor) String() string {
	var s string
	switch a.Via {
	case ViaCLI:
		s = "CLI"
	case ViaAdminPage:
		s = "admin page"
	case ViaAPI:
		s = "admin API"
	case ViaKeySaved:
		s = "automatically after a Cliniko key was saved"
	case ViaPractitioner:
		s = "practitioner (send to Cliniko again)"
	default:
		s = "unknown"
	}
	if a.Who != "" {
		s += " (" + a.Who + ")"
	}
	return s
}

// WhoProblem says what is wrong with a name given for Actor.Who (a CLI's
// --by, an API caller's "by"), or "" when it can be kept as given.
func WhoProblem(s string) string {
	if len([]rune(s)) > MaxActorWho || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }) {
		return fmt.Sprintf("a name of at most %d characters, without control characters", MaxActorWho)
	}
	return ""
}

// CleanWho makes a free-text Who fit to keep and show: control characters
// dropped, spaces collapsed, at most MaxActorWho characters.
func CleanWho(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
	}), " ")
	if r := []rune(s); len(r) > MaxActorWho {
		s = string(r[:MaxActorWho])
	}
	return s
}

type actorKey struct{}

// ActingAs returns ctx carrying who is acting: replays and deletions made
// with it are written to the job's history as theirs.
func ActingAs(ctx context.Context, a Actor) context.Context {
	a.Who = CleanWho(a.Who)
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorOf returns who ActingAs put in ctx (the zero Actor, "unknown", when
// nobody did).
func ActorOf(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	return a
}

// EventKind is what happened to a job.
type EventKind string

// The kinds of a job's history events.
const (
	EventFailed       EventKind = "failed"        // an attempt failed (for good when Permanent)
	EventReplayed     EventKind = "replayed"      // someone ran it again (By)
	EventReplayFailed EventKind = "replay_failed" // a replay could not queue the task; the entry is as before
	EventSucceeded    EventKind = "succeeded"     // it ran and succeeded; it left the ledger
	EventDeleted      EventKind = "deleted"       // support gave up on it (By); it left the ledger
)

// JobEvent is one entry of a job's history. Failed attempts that repeat
// the one before (same cause, reason, finality and Cliniko user) are one
// event with a Count, so a job that fails every period for a month keeps
// a short history.
type JobEvent struct {
	Kind EventKind `json:"kind"`
	At   time.Time `json:"at"`
	// Attempt is a failed attempt's number (1 for the first since the task
	// was queued or replayed).
	Attempt int `json:"attempt,omitempty"`
	// Permanent: the attempt failed for good (asynq archived the task).
	Permanent bool            `json:"permanent,omitempty"`
	Cause     pmsbridge.Cause `json:"cause,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	// KeyUser is whose Cliniko key the failed attempt used (nil: none was
	// used, e.g. nobody had a key).
	KeyUser *KeyUser `json:"cliniko_user,omitempty"`
	// Count is how many failed attempts in a row this event stands for (1
	// or more); LastAt and LastAttempt are the last one's when Count > 1.
	Count       int       `json:"count,omitempty"`
	LastAt      time.Time `json:"last_at,omitzero"`
	LastAttempt int       `json:"last_attempt,omitempty"`
	// By is who asked, for replays and deletions.
	By *Actor `json:"by,omitempty"`
}

// repeats reports whether e is a failed attempt like prev, the event
// before it, so that the two are one event.
func (e JobEvent) repeats(prev JobEvent) bool {
	if e.Kind != EventFailed || prev.Kind != EventFailed || e.Cause != prev.Cause || e.Reason != prev.Reason || e.Permanent != prev.Permanent {
		return false
	}
	if (e.KeyUser == nil) != (prev.KeyUser == nil) {
		return false
	}
	return e.KeyUser == nil || *e.KeyUser == *prev.KeyUser
}

func (s *Store) historyKey(taskID string) string { return s.key("history", taskID) }

// addEvent puts e at the head of a job's history (or merges it into the
// head when it repeats it), caps the list and renews its TTL. A single-key
// optimistic transaction: one job runs on one worker at a time, so it
// rarely retries.
func (s *Store) addEvent(ctx context.Context, taskID string, e JobEvent) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	if e.Kind == EventFailed && e.Count == 0 {
		e.Count = 1
	}
	key := s.historyKey(taskID)
	err := watchRetry(ctx, s.rdb, key, func(tx *redis.Tx) error {
		merged := false
		var head JobEvent
		if e.Kind == EventFailed {
			b, err := tx.LIndex(ctx, key, 0).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return err
			case json.Unmarshal(b, &head) == nil && e.repeats(head):
				head.Count += e.Count
				head.LastAt, head.LastAttempt = e.At, e.Attempt
				merged = true
			}
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if merged {
				p.LSet(ctx, key, 0, mustJSON(head))
			} else {
				p.LPush(ctx, key, mustJSON(e))
				p.LTrim(ctx, key, 0, int64(s.opts.JobHistoryCap-1))
			}
			p.PExpire(ctx, key, s.opts.JobHistoryTTL)
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("job history of %s: %w", taskID, err)
	}
	return nil
}

// JobHistory returns what happened to a job, oldest first (empty when
// nothing is known: the job never failed, or its history has expired).
func (s *Store) JobHistory(ctx context.Context, taskID string) ([]JobEvent, error) {
	raw, err := s.rdb.LRange(ctx, s.historyKey(taskID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("job history of %s: %w", taskID, err)
	}
	out := make([]JobEvent, 0, len(raw))
	for i := len(raw) - 1; i >= 0; i-- {
		var e JobEvent
		if err := json.Unmarshal([]byte(raw[i]), &e); err != nil {
			return nil, fmt.Errorf("job history of %s: %w", taskID, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Recovered is a job that succeeded after a replay: its ledger entry as it
// was then (the cause it had failed with, the last replay), and when.
type Recovered struct {
	Failure
	RecoveredAt time.Time `json:"recovered_at"`
}

func (s *Store) recoveredKey(taskID string) string { return s.key("recovered", taskID) }
func (s *Store) recoveredIndex() string            { return s.key("recovered") }

// ListRecovered returns the jobs that succeeded after a replay within the
// last Options.RecoveredFor (a day), newest first, that f selects (Since
// applies to the recovery time; permanence and attempts do not apply).
func (s *Store) ListRecovered(ctx context.Context, f FailureFilter) ([]Recovered, error) {
	now := s.now()
	from := now.Add(-s.opts.RecoveredFor)
	if f.Since.After(from) {
		from = f.Since
	}
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.recoveredIndex(), &redis.ZRangeBy{Min: strconv.FormatInt(from.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("list recovered jobs: %w", err)
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.recoveredKey(id)
	}
	list, err := getMany[Recovered](ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("list recovered jobs: %w", err)
	}
	pracs, err := s.subscriptionPractitioners(ctx, f.SubscriptionID)
	if err != nil {
		return nil, fmt.Errorf("list recovered jobs: %w", err)
	}
	f.Since, f.PermanentOnly, f.MinAttempts = time.Time{}, false, -1
	out := []Recovered{}
	for _, r := range list {
		if f.match(r.Failure, pracs) {
			out = append(out, r)
		}
	}
	return out, nil
}

// GetRecovered returns a recently recovered job (ErrNotFound when it is
// not one, or no longer).
func (s *Store) GetRecovered(ctx context.Context, taskID string) (Recovered, error) {
	var r Recovered
	if err := getJSON(ctx, s.rdb, s.recoveredKey(taskID), &r); err != nil {
		return r, fmt.Errorf("recovered job %s: %w", taskID, err)
	}
	return r, nil
}

// failureCountDays is how long the hourly failure counts are kept.
const failureCountDays = 8

func (s *Store) failureCountKey(hour time.Time) string {
	return s.key("stats", "failures", hour.UTC().Format("2006-01-02T15"))
}

// HourCount is how many failed attempts were recorded in one hour, by
// cause.
type HourCount struct {
	Hour    time.Time               // the hour's start, UTC
	ByCause map[pmsbridge.Cause]int // causes with at least one failure
}

// FailuresPerHour returns the failed attempts recorded in each hour from
// the one holding from to the one holding to (UTC), oldest first; hours
// with none have an empty map. Counts are kept for 8 days.
func (s *Store) FailuresPerHour(ctx context.Context, from, to time.Time) ([]HourCount, error) {
	from, to = from.UTC().Truncate(time.Hour), to.UTC().Truncate(time.Hour)
	if to.Sub(from) > failureCountDays*24*time.Hour {
		from = to.Add(-failureCountDays * 24 * time.Hour)
	}
	var hours []time.Time
	for h := from; !h.After(to); h = h.Add(time.Hour) {
		hours = append(hours, h)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(hours))
	for i, h := range hours {
		cmds[i] = pipe.HGetAll(ctx, s.failureCountKey(h))
	}
	if len(hours) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("failures per hour: %w", err)
		}
	}
	out := make([]HourCount, len(hours))
	for i, h := range hours {
		out[i] = HourCount{Hour: h, ByCause: map[pmsbridge.Cause]int{}}
		for c, v := range cmds[i].Val() {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				out[i].ByCause[pmsbridge.Cause(c)] = n
			}
		}
	}
	return out, nil
}
