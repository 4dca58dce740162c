package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClinikoUser is the Cliniko user that a practitioner's API key belongs to,
// as Cliniko's GET /user reported it when the key was saved.
type ClinikoUser struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	Role  string `json:"role"`
	Shard string `json:"shard"` // e.g. "au1": the key's suffix
	// Account is the Cliniko account (clinic) the key belongs to, read
	// from GET /businesses when the key was saved; not Known for keys saved
	// before it was recorded or when the businesses could not be read.
	Account ClinikoAccount `json:"account,omitzero"`
	// ClinicProbe is what reading one of the clinic's linked patients with
	// the key showed, when the key was saved while its account could not be
	// compared with the clinic's (ProbeSees, ProbeNotFound); "" when it was
	// not tried.
	ClinicProbe Probe `json:"clinic_probe,omitempty"`
}

// Probe is the outcome of reading one of a clinic's linked patients with a
// new key.
type Probe string

// The outcomes of a probe.
const (
	ProbeSees     Probe = "sees"      // the key read the patient: it is of the clinic's Cliniko account
	ProbeNotFound Probe = "not_found" // Cliniko did not find the patient: another account (or that patient was archived)
)

func (s *Store) clinikoKey(practitionerID string) string {
	return s.key("prac", practitionerID, "cliniko")
}

func clinikoAAD(practitionerID string) string { return "cliniko-key:" + practitionerID }

// SetClinikoKey saves (or replaces) the Cliniko API key of a practitioner,
// encrypted, with the Cliniko user it belongs to. The caller checks the key
// against Cliniko first.
func (s *Store) SetClinikoKey(ctx context.Context, practitionerID, key string, u ClinikoUser) error {
	key = strings.TrimSpace(key)
	if key == "" || len(key) > 1024 || !validID(u.Shard) {
		return fmt.Errorf("set cliniko key of %s: %w", practitionerID, invalid("cliniko key", "key and shard are required"))
	}
	if _, err := s.getPractitionerRecord(ctx, practitionerID); err != nil {
		return fmt.Errorf("set cliniko key of %s: %w", practitionerID, err)
	}
	enc, err := s.keys.Encrypt([]byte(key), clinikoAAD(practitionerID))
	if err != nil {
		return fmt.Errorf("set cliniko key of %s: %w", practitionerID, err)
	}
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, s.clinikoKey(practitionerID), "key", enc, "user", mustJSON(u), "saved_at", s.now().Format(time.RFC3339Nano))
	pipe.SAdd(ctx, s.key("cliniko", "keys"), practitionerID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("set cliniko key of %s: %w", practitionerID, err)
	}
	return nil
}

// ClinikoKey returns the decrypted Cliniko API key of a practitioner and its
// user; ErrNotFound when none is saved.
func (s *Store) ClinikoKey(ctx context.Context, practitionerID string) (string, ClinikoUser, error) {
	var u ClinikoUser
	if !validID(practitionerID) {
		return "", u, fmt.Errorf("cliniko key of %q: %w", practitionerID, ErrNotFound)
	}
	vals, err := s.rdb.HMGet(ctx, s.clinikoKey(practitionerID), "key", "user").Result()
	if err != nil {
		return "", u, fmt.Errorf("cliniko key of %s: %w", practitionerID, err)
	}
	enc, _ := vals[0].(string)
	user, _ := vals[1].(string)
	if enc == "" {
		return "", u, fmt.Errorf("cliniko key of %s: %w", practitionerID, ErrNotFound)
	}
	key, err := s.keys.Decrypt(enc, clinikoAAD(practitionerID))
	if err != nil {
		return "", u, fmt.Errorf("cliniko key of %s: %w", practitionerID, err)
	}
	if err := jsonUnmarshal([]byte(user), &u); err != nil {
		return "", u, fmt.Errorf("cliniko key of %s: %w", practitionerID, err)
	}
	return string(key), u, nil
}

// ClinikoUserOf returns the Cliniko user of a practitioner's saved key
// without decrypting the key (for pages); ok is false when none is saved.
func (s *Store) ClinikoUserOf(ctx context.Context, practitionerID string) (ClinikoUser, bool, error) {
	var u ClinikoUser
	if !validID(practitionerID) {
		return u, false, nil
	}
	b, err := s.rdb.HGet(ctx, s.clinikoKey(practitionerID), "user").Bytes()
	if errors.Is(err, redis.Nil) {
		return u, false, nil
	}
	if err == nil {
		err = jsonUnmarshal(b, &u)
	}
	if err != nil {
		return u, false, fmt.Errorf("cliniko user of %s: %w", practitionerID, err)
	}
	return u, true, nil
}

// DeleteClinikoKey removes a practitioner's saved key (not an error when
// there is none).
func (s *Store) DeleteClinikoKey(ctx context.Context, practitionerID string) error {
	if !validID(practitionerID) {
		return nil
	}
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.clinikoKey(practitionerID))
	pipe.SRem(ctx, s.key("cliniko", "keys"), practitionerID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete cliniko key of %s: %w", practitionerID, err)
	}
	return nil
}

// PractitionersWithKeys returns the ids of practitioners with a saved
// Cliniko key, sorted, for the periodic sync.
func (s *Store) PractitionersWithKeys(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.key("cliniko", "keys")).Result()
	if err != nil {
		return nil, fmt.Errorf("practitioners with keys: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// PractitionerWithCliniko returns a practitioner and the Cliniko user of
// their saved key (ok false when none) in one Redis round trip: the two
// lookups of every logged-in request.
func (s *Store) PractitionerWithCliniko(ctx context.Context, id string) (Practitioner, ClinikoUser, bool, error) {
	var u ClinikoUser
	if !validID(id) {
		return Practitioner{}, u, false, fmt.Errorf("get practitioner %s: %w", id, ErrNotFound)
	}
	pipe := s.rdb.Pipeline()
	pc := pipe.Get(ctx, s.key("prac", id))
	uc := pipe.HGet(ctx, s.clinikoKey(id), "user")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Practitioner{}, u, false, fmt.Errorf("get practitioner %s: %w", id, err)
	}
	pb, perr := pc.Bytes()
	if perr != nil && !errors.Is(perr, redis.Nil) {
		return Practitioner{}, u, false, fmt.Errorf("get practitioner %s: %w", id, perr)
	}
	ub, uerr := uc.Bytes()
	if uerr != nil && !errors.Is(uerr, redis.Nil) {
		return Practitioner{}, u, false, fmt.Errorf("cliniko user of %s: %w", id, uerr)
	}
	return decodePractitionerWithCliniko(id, pb, perr == nil, ub, uerr == nil)
}

// decodePractitionerWithCliniko decodes practitioner id's record and the
// Cliniko user of their saved key, as read by PractitionerWithCliniko or
// the click script (found: the value exists). A missing record is
// ErrNotFound; a missing user is no key (ok false).
func decodePractitionerWithCliniko(id string, pb []byte, pFound bool, ub []byte, uFound bool) (Practitioner, ClinikoUser, bool, error) {
	var u ClinikoUser
	if !pFound {
		return Practitioner{}, u, false, fmt.Errorf("get practitioner %s: %w", id, ErrNotFound)
	}
	var rec practitionerRecord
	if err := jsonUnmarshal(pb, &rec); err != nil {
		return Practitioner{}, u, false, fmt.Errorf("get practitioner %s: %w", id, err)
	}
	if !uFound {
		return rec.Practitioner, u, false, nil
	}
	if err := jsonUnmarshal(ub, &u); err != nil {
		return rec.Practitioner, u, false, fmt.Errorf("cliniko user of %s: %w", id, err)
	}
	return rec.Practitioner, u, true, nil
}

// SubscriptionShard is a subscription on a Cliniko shard: what design.md
// calls a Cliniko account (subscription + shard). Links are kept per
// subscription shard, and the periodic sync runs once for each, with one
// working key of it.
type SubscriptionShard struct {
	SubscriptionID string
	Shard          string
}

// KeyHolder is an active practitioner with a saved Cliniko key, and the
// Cliniko user of that key (as it was when the key was saved).
type KeyHolder struct {
	PractitionerID string
	User           ClinikoUser
}

// keyHolderBatch bounds the commands of one pipeline when key holders are
// read.
const keyHolderBatch = 500

// keyHolders reads the practitioners ids and the Cliniko users of their
// saved keys, in pipelines of keyHolderBatch, and calls fn for each active
// practitioner that has a key.
func (s *Store) keyHolders(ctx context.Context, ids []string, fn func(Practitioner, ClinikoUser)) error {
	for start := 0; start < len(ids); start += keyHolderBatch {
		batch := ids[start:min(start+keyHolderBatch, len(ids))]
		pipe := s.rdb.Pipeline()
		pcs := make([]*redis.StringCmd, len(batch))
		ucs := make([]*redis.StringCmd, len(batch))
		for i, id := range batch {
			if !validID(id) {
				continue
			}
			pcs[i] = pipe.Get(ctx, s.key("prac", id))
			ucs[i] = pipe.HGet(ctx, s.clinikoKey(id), "user")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i := range batch {
			if pcs[i] == nil {
				continue
			}
			pb, perr := pcs[i].Bytes()
			ub, uerr := ucs[i].Bytes()
			if errors.Is(perr, redis.Nil) || errors.Is(uerr, redis.Nil) {
				continue // deleted, or the key was removed meanwhile
			}
			if err := errors.Join(perr, uerr); err != nil {
				return err
			}
			var rec practitionerRecord
			var u ClinikoUser
			if err := errors.Join(jsonUnmarshal(pb, &rec), jsonUnmarshal(ub, &u)); err != nil {
				return fmt.Errorf("key holder %s: %w", batch[i], err)
			}
			if rec.Active && validID(u.Shard) {
				fn(rec.Practitioner, u)
			}
		}
	}
	return nil
}

// SubscriptionShards returns the subscription shards that at least one
// active practitioner has a saved key for, sorted by subscription and
// shard: what the periodic sync runs over. It reads every key holder once
// (pipelined).
func (s *Store) SubscriptionShards(ctx context.Context) ([]SubscriptionShard, error) {
	ids, err := s.PractitionersWithKeys(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[SubscriptionShard]bool{}
	var out []SubscriptionShard
	err = s.keyHolders(ctx, ids, func(p Practitioner, u ClinikoUser) {
		a := SubscriptionShard{SubscriptionID: p.SubscriptionID, Shard: u.Shard}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscription shards: %w", err)
	}
	slices.SortFunc(out, func(a, b SubscriptionShard) int {
		if c := strings.Compare(a.SubscriptionID, b.SubscriptionID); c != 0 {
			return c
		}
		return strings.Compare(a.Shard, b.Shard)
	})
	return out, nil
}

// AccountKeyHolders returns the active practitioners of subscription subID
// whose saved key is for shard, with their Cliniko users, sorted by
// practitioner id (none is not an error). A key known to belong to another
// Cliniko account than the one the subscription's patients on that shard
// come from (SubscriptionClinikoAccount) is left out: it would read another
// clinic's patients. Keys whose account is not known are kept.
func (s *Store) AccountKeyHolders(ctx context.Context, subID, shard string) ([]KeyHolder, error) {
	if !validID(subID) || !validID(shard) {
		return nil, fmt.Errorf("key holders of %q/%q: %w", subID, shard, invalid("account", "bad subscription or shard"))
	}
	ids, err := s.rdb.SMembers(ctx, s.key("sub", subID, "pracs")).Result()
	if err != nil {
		return nil, fmt.Errorf("key holders of %s/%s: %w", subID, shard, err)
	}
	claimed, _, err := s.SubscriptionClinikoAccount(ctx, subID, shard)
	if err != nil {
		return nil, fmt.Errorf("key holders of %s/%s: %w", subID, shard, err)
	}
	slices.Sort(ids)
	var out []KeyHolder
	err = s.keyHolders(ctx, ids, func(p Practitioner, u ClinikoUser) {
		other := claimed.Known() && u.Account.Known() && !claimed.Same(u.Account)
		if p.SubscriptionID == subID && u.Shard == shard && !other {
			out = append(out, KeyHolder{PractitionerID: p.ID, User: u})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("key holders of %s/%s: %w", subID, shard, err)
	}
	return out, nil
}
