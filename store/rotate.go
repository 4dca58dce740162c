package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Reencrypt rewrites every encrypted value made under a key other than the
// keyring's current one (patient details, programme versions and codes,
// Cliniko keys) under the current key, seals programme text stored before
// it was encrypted, and moves the access code index to the current key's
// MAC; it returns how many records it rewrote. Run it after putting a new
// key first in the keyring; once it returns, previous keys can be dropped
// (codes are found under every key of the ring until then). It walks the
// subscription and key indexes (no SCAN), so it works on a Cluster, and it
// is safe to run while the service is up and to re-run.
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
			progs, err := s.rdb.SMembers(ctx, s.key("pat", id, "programmes")).Result()
			if err != nil {
				return n, fmt.Errorf("reencrypt: %w", err)
			}
			for _, prg := range progs {
				if !validID(prg) {
					continue
				}
				rewrote, err := s.reencryptProgramme(ctx, prg)
				if err != nil {
					return n, fmt.Errorf("reencrypt programme %s: %w", prg, err)
				}
				if rewrote {
					n++
				}
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

// reencryptProgramme seals a programme's code and versions under the
// current key and moves its code index entry to the current key's MAC. It
// reports whether it changed anything. Each field is replaced only if it
// is unchanged meanwhile (versions never change once written; the code
// only with its first version).
func (s *Store) reencryptProgramme(ctx context.Context, id string) (bool, error) {
	key := s.key("prg", id)
	h, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil || len(h) == 0 {
		return false, err
	}
	changed := false
	swap := func(field, old, fresh string) error {
		ok, err := swapFieldScript.Run(ctx, s.rdb, []string{key}, field, old, fresh).Bool()
		changed = changed || ok
		return err
	}
	sealedCode := h["code"]
	code, err := s.openCode(id, sealedCode)
	if err != nil {
		return false, err
	}
	if s.keys.NeedsRotation(sealedCode) {
		fresh, err := s.keys.Encrypt([]byte(code), codeAAD(id))
		if err != nil {
			return false, err
		}
		if err := swap("code", sealedCode, fresh); err != nil {
			return false, err
		}
	}
	for f, v := range h {
		version, ok := versionOfField(f)
		if !ok || !s.keys.NeedsRotation(v) {
			continue
		}
		p, err := s.openVersion(id, version, v)
		if err != nil {
			return false, err
		}
		fresh, err := s.keys.Encrypt(mustJSON(p), versionAAD(id, version))
		if err != nil {
			return false, err
		}
		if err := swap(f, v, fresh); err != nil {
			return false, err
		}
	}
	// The index under the current key first, then the old entries go, so
	// that a look-up always finds the code.
	macs := s.keys.MACs("code", code)
	cur, err := s.rdb.Get(ctx, s.codeIndexKey(macs[0])).Result()
	if errors.Is(err, redis.Nil) {
		if err := s.rdb.Set(ctx, s.codeIndexKey(macs[0]), id, 0).Err(); err != nil {
			return false, err
		}
		changed = true
	} else if err != nil {
		return false, err
	} else if cur != id {
		return false, fmt.Errorf("code index entry taken by %s: %w", cur, ErrConflict)
	}
	for _, k := range append(s.codeIndexKeys(macs[1:]), s.key("code", code)) {
		if n, err := delIfScript.Run(ctx, s.rdb, []string{k}, id).Int(); err != nil {
			return false, err
		} else if n > 0 {
			changed = true
		}
	}
	return changed, nil
}
