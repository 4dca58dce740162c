package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Reencrypt rewrites every encrypted value made under a key other than the
// keyring's current one (patient details and Cliniko keys) under the current
// key, and returns how many records it rewrote. Run it after putting a new
// key first in the keyring; once it returns, previous keys can be dropped.
// It walks the subscription and key indexes (no SCAN), so it works on a
// Cluster, and it is safe to run while the service is up and to re-run.
func (s *Store) Reencrypt(ctx context.Context) (int, error) {
	n := 0
	if s.keys == nil {
		return n, fmt.Errorf("reencrypt: %w", ErrNoKey)
	}
	subs, err := s.ListSubscriptions(ctx)
	if err != nil {
		return n, fmt.Errorf("reencrypt: %w", err)
	}
	for _, sub := range subs {
		ids, err := s.rdb.SMembers(ctx, s.key("sub", sub.ID, "patients")).Result()
		if err != nil {
			return n, fmt.Errorf("reencrypt: %w", err)
		}
		for _, id := range ids {
			if !validID(id) {
				continue
			}
			rewrote := false
			_, err := updateJSON(ctx, s.rdb, s.key("pat", id), func(rec *patientRecord) error {
				rewrote = false
				if !s.keys.NeedsRotation(rec.Details) {
					return nil
				}
				p, err := s.decodePatient(*rec)
				if err != nil {
					return err
				}
				if *rec, err = s.encodePatient(p); err != nil {
					return err
				}
				rewrote = true
				return nil
			})
			if err != nil && !isNotFound(err) {
				return n, fmt.Errorf("reencrypt patient %s: %w", id, err)
			}
			if rewrote {
				n++
			}
		}
	}
	pracs, err := s.PractitionersWithKeys(ctx)
	if err != nil {
		return n, fmt.Errorf("reencrypt: %w", err)
	}
	for _, id := range pracs {
		enc, err := s.rdb.HGet(ctx, s.clinikoKey(id), "key").Result()
		if errors.Is(err, redis.Nil) {
			continue // removed meanwhile
		}
		if err != nil {
			// Not skipped: once this returns nil the old keys may be dropped.
			return n, fmt.Errorf("reencrypt cliniko key of %s: %w", id, err)
		}
		if !s.keys.NeedsRotation(enc) {
			continue
		}
		plain, err := s.keys.Decrypt(enc, clinikoAAD(id))
		if err != nil {
			return n, fmt.Errorf("reencrypt cliniko key of %s: %w", id, err)
		}
		fresh, err := s.keys.Encrypt(plain, clinikoAAD(id))
		if err != nil {
			return n, fmt.Errorf("reencrypt cliniko key of %s: %w", id, err)
		}
		// Replace only if unchanged meanwhile: a key saved in between is
		// already under the current key.
		if ok, err := swapFieldScript.Run(ctx, s.rdb, []string{s.clinikoKey(id)}, "key", enc, fresh).Bool(); err != nil {
			return n, fmt.Errorf("reencrypt cliniko key of %s: %w", id, err)
		} else if ok {
			n++
		}
	}
	return n, nil
}
