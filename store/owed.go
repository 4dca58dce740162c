package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Owed work. Redis replication is asynchronous, so a failover can lose the
// last writes, queued tasks among them: the records are the truth, and the
// reconciler (jobs) re-queues what a record says is still owed. So that it
// never has to scan every record, each kind of owed work has an index, a
// sorted set of ids scored by when the work became owed, written where the
// owed state is written: added before the record says "owed" and removed
// after it says otherwise, so a crash in between leaves at worst an entry
// that the reconciler finds settled and drops.
//
// Key layout (P is the prefix):
//
//	P owed:<kind>                   zset  ids of owed work, scored by when owed (unix ms)
//	P owed:<kind>:cursor            str   "<score> <id>": where the reconciler's next page starts
//	P importwait:<sub>:<shard>:<id> json  ImportWait, with a TTL
//	P period:<name>:<unix>          str   a periodic job's claim on one period (sync, reconcile), TTL

// OwedKind names one kind of owed work (and its index).
type OwedKind string

// The kinds of owed work.
const (
	// OwedPDF: programme versions whose PDF state is pending; id
	// PDFOwedID(programme, version). Maintained by SetPDFState.
	OwedPDF OwedKind = "pdf"
	// OwedImport: Cliniko imports a practitioner is waiting for; id
	// ImportWaitID(subscription, shard, Cliniko patient id). Maintained by
	// AwaitImport and ClearImportWait.
	OwedImport OwedKind = "import"
	// OwedMessage: code messages to patients not sent yet. The patient
	// messages record marks them (MarkOwed when a message is asked for,
	// ClearOwed once it is sent or failed for good) and registers its
	// settle function with the reconciler (jobs.OwedWork).
	OwedMessage OwedKind = "message"
)

func (s *Store) owedKey(kind OwedKind) string { return s.key("owed", string(kind)) }

// MarkOwed records that work id of kind is owed, from now (an id already
// owed keeps its first time).
func (s *Store) MarkOwed(ctx context.Context, kind OwedKind, id string) error {
	if kind == "" || id == "" {
		return fmt.Errorf("mark owed: %w", invalid("owed work", "kind and id are required"))
	}
	err := s.rdb.ZAddNX(ctx, s.owedKey(kind), redis.Z{Score: float64(s.now().UnixMilli()), Member: id}).Err()
	if err != nil {
		return fmt.Errorf("mark owed %s %s: %w", kind, id, err)
	}
	return nil
}

// ClearOwed records that work id of kind is no longer owed. Clearing an id
// that is not owed is not an error.
func (s *Store) ClearOwed(ctx context.Context, kind OwedKind, id string) error {
	if err := s.rdb.ZRem(ctx, s.owedKey(kind), id).Err(); err != nil {
		return fmt.Errorf("clear owed %s %s: %w", kind, id, err)
	}
	return nil
}

// OwedEntry is one id of owed work and since when it is owed.
type OwedEntry struct {
	ID    string
	Since time.Time
}

// CountOwed returns how many ids of kind are owed.
func (s *Store) CountOwed(ctx context.Context, kind OwedKind) (int64, error) {
	return s.rdb.ZCard(ctx, s.owedKey(kind)).Result()
}

// NextOwed returns up to limit ids of kind owed since before (or earlier),
// continuing after where its previous call stopped and wrapping around to
// the oldest at the end, so that calls with a small limit visit every entry
// in turn. One caller at a time (the reconciler claims its period).
func (s *Store) NextOwed(ctx context.Context, kind OwedKind, before time.Time, limit int) ([]OwedEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	key, cursorKey := s.owedKey(kind), s.key("owed", string(kind), "cursor")
	cur, err := s.rdb.Get(ctx, cursorKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("owed %s: %w", kind, err)
	}
	max := strconv.FormatInt(before.UnixMilli(), 10)
	var out []OwedEntry
	if cs, cm, ok := strings.Cut(cur, " "); ok {
		// After the cursor: the rest of its score (members of one score come
		// in lexical order), then the higher scores.
		out, err = s.owedRange(ctx, key, cs, max, limit, func(z redis.Z) bool {
			return strconv.FormatFloat(z.Score, 'f', -1, 64) != cs || z.Member.(string) > cm
		})
		if err != nil {
			return nil, fmt.Errorf("owed %s: %w", kind, err)
		}
		if len(out) < limit {
			// Wrapped: from the oldest, up to the cursor.
			more, err := s.owedRange(ctx, key, "-inf", cs, limit-len(out), func(z redis.Z) bool {
				return strconv.FormatFloat(z.Score, 'f', -1, 64) != cs || z.Member.(string) <= cm
			})
			if err != nil {
				return nil, fmt.Errorf("owed %s: %w", kind, err)
			}
			out = append(out, more...)
		}
	} else if out, err = s.owedRange(ctx, key, "-inf", max, limit, nil); err != nil {
		return nil, fmt.Errorf("owed %s: %w", kind, err)
	}
	if len(out) == 0 {
		return nil, s.rdb.Del(ctx, cursorKey).Err()
	}
	last := out[len(out)-1]
	if err := s.rdb.Set(ctx, cursorKey, strconv.FormatInt(last.Since.UnixMilli(), 10)+" "+last.ID, 0).Err(); err != nil {
		return nil, fmt.Errorf("owed %s: %w", kind, err)
	}
	return out, nil
}

// owedRange reads entries scored min..max (inclusive) in order, keeping
// those keep accepts (all when nil), until it has limit.
func (s *Store) owedRange(ctx context.Context, key, min, max string, limit int, keep func(redis.Z) bool) ([]OwedEntry, error) {
	const page = 100
	var out []OwedEntry
	for offset := int64(0); ; offset += page {
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: key, Start: min, Stop: max, ByScore: true, Offset: offset, Count: page}).Result()
		if err != nil {
			return nil, err
		}
		for _, z := range zs {
			if keep != nil && !keep(z) {
				continue
			}
			out = append(out, OwedEntry{ID: z.Member.(string), Since: time.UnixMilli(int64(z.Score)).UTC()})
			if len(out) == limit {
				return out, nil
			}
		}
		if len(zs) < page {
			return out, nil
		}
	}
}

// PDFOwedID is the owed-work id of a programme version's PDF upload.
func PDFOwedID(programmeID string, version int) string {
	return programmeID + ":" + strconv.Itoa(version)
}

// ParsePDFOwedID splits a PDFOwedID.
func ParsePDFOwedID(id string) (programmeID string, version int, ok bool) {
	p, v, ok := strings.Cut(id, ":")
	n, err := strconv.Atoi(v)
	if !ok || err != nil || n < 1 || !validID(p) {
		return "", 0, false
	}
	return p, n, true
}

// ImportWait records that a practitioner clicked "Open in" on a Cliniko
// patient who is not linked yet and waits for the import: if the import's
// task is lost (a Redis failover), the reconciler queues it again while the
// wait lasts. Ids only.
type ImportWait struct {
	PractitionerID   string    `json:"practitioner_id"`
	SubscriptionID   string    `json:"subscription_id"`
	Shard            string    `json:"shard"`
	ClinikoPatientID string    `json:"cliniko_patient_id"`
	Since            time.Time `json:"since"`
}

// ImportWaitID is the owed-work id of an import: one per Cliniko patient
// per subscription, like the import task.
func ImportWaitID(subscriptionID, shard, clinikoPatientID string) string {
	return subscriptionID + ":" + shard + ":" + clinikoPatientID
}

func (s *Store) importWaitKey(id string) string { return s.key("importwait", id) }

// AwaitImport records w for ttl (a later click on the same patient starts
// the wait again). Call it before the import is queued.
func (s *Store) AwaitImport(ctx context.Context, w ImportWait, ttl time.Duration) error {
	if !validID(w.PractitionerID) || !validID(w.SubscriptionID) || !validID(w.Shard) || !validID(w.ClinikoPatientID) || ttl <= 0 {
		return fmt.Errorf("await import: %w", invalid("import wait", "ids and a positive ttl are required"))
	}
	if w.Since.IsZero() {
		w.Since = s.now()
	}
	id := ImportWaitID(w.SubscriptionID, w.Shard, w.ClinikoPatientID)
	pipe := s.rdb.Pipeline()
	pipe.ZAddNX(ctx, s.owedKey(OwedImport), redis.Z{Score: float64(s.now().UnixMilli()), Member: id})
	pipe.Set(ctx, s.importWaitKey(id), mustJSON(w), ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("await import: %w", err)
	}
	return nil
}

// ImportWaitOf returns the wait recorded under id (ErrNotFound once it has
// expired or been cleared).
func (s *Store) ImportWaitOf(ctx context.Context, id string) (ImportWait, error) {
	var w ImportWait
	if err := getJSON(ctx, s.rdb, s.importWaitKey(id), &w); err != nil {
		return w, fmt.Errorf("import wait %s: %w", id, err)
	}
	return w, nil
}

// ClearImportWait ends the wait for an import (the link exists).
func (s *Store) ClearImportWait(ctx context.Context, subscriptionID, shard, clinikoPatientID string) error {
	id := ImportWaitID(subscriptionID, shard, clinikoPatientID)
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.importWaitKey(id))
	pipe.ZRem(ctx, s.owedKey(OwedImport), id)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("clear import wait: %w", err)
	}
	return nil
}

// ClaimPeriod claims one period (its start) of the periodic job name for
// ttl: true for the first claim only, so that of several work processes one
// runs the job each period.
func (s *Store) ClaimPeriod(ctx context.Context, name string, period time.Time, ttl time.Duration) (bool, error) {
	first, err := s.rdb.SetNX(ctx, s.key("period", name, strconv.FormatInt(period.Unix(), 10)), 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("claim %s period: %w", name, err)
	}
	return first, nil
}
