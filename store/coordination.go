package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds what processes use to coordinate through Redis rather
// than records: locks, debounces, period claims, counters and the key of
// the Cliniko request budget. Their keys are listed with the others in
// store.go.

// ClinikoBudgetKey names the Redis key of one Cliniko user's shared request
// budget (budget is "<shard>:<user id>", or "<shard>:k:<key hash>" while
// the user is not known yet). The Cliniko client's limiter uses it; the
// limiter puts "rate:" in front (the prefix of redis_rate, which older
// versions used).
func (s *Store) ClinikoBudgetKey(budget string) string { return s.key("cliniko", budget) }

// Lock is a lock held by this process. It is released by Release, or by
// itself when it is not renewed within its time to live, so a process that
// dies leaves it behind only that long. Renew and Release act only while
// the lock is still this holder's.
type Lock struct {
	s     *Store
	key   string
	token string
	ttl   time.Duration
}

// renewLockScript extends a lock that still holds the holder's token.
// KEYS[1] lock; ARGV token, ttl in ms. Returns 1 when renewed.
var renewLockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// ErrLockLost is returned by Lock.Renew when the lock is no longer this
// holder's (it ran out and another process took it, or it was removed).
var ErrLockLost = errors.New("lock lost")

// LockUpload takes the lock of one programme version's upload for ttl. ok
// is false, with a nil lock, when another process holds it.
func (s *Store) LockUpload(ctx context.Context, programmeID string, version int, ttl time.Duration) (*Lock, bool, error) {
	if !validID(programmeID) || version < 1 {
		return nil, false, fmt.Errorf("lock upload: %w", invalid("lock", "bad programme id or version"))
	}
	return s.tryLock(ctx, s.key("lock", "pdf", programmeID, "v"+strconv.Itoa(version)), ttl)
}

func (s *Store) tryLock(ctx context.Context, key string, ttl time.Duration) (*Lock, bool, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, false, fmt.Errorf("lock token: %w", err)
	}
	l := &Lock{s: s, key: key, token: hex.EncodeToString(b), ttl: ttl}
	ok, err := s.rdb.SetNX(ctx, key, l.token, ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("take lock: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	return l, true, nil
}

// Renew gives the lock its full time to live again.
func (l *Lock) Renew(ctx context.Context) error {
	n, err := renewLockScript.Run(ctx, l.s.rdb, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renew lock: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("renew lock: %w", ErrLockLost)
	}
	return nil
}

// Held reports whether the lock is still this holder's: a Redis failover
// can lose it while the holder works, and hand the work to another process.
func (l *Lock) Held(ctx context.Context) (bool, error) {
	owner, err := l.s.rdb.Get(ctx, l.key).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check lock: %w", err)
	}
	return owner == l.token, nil
}

// Release gives the lock up (not an error when it is no longer held).
func (l *Lock) Release(ctx context.Context) error {
	if err := delIfScript.Run(ctx, l.s.rdb, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	return nil
}

// DebounceRefresh reports whether a refresh of the patient may be queued
// now, and if so holds off the next ones for ttl. One round trip (SET NX).
func (s *Store) DebounceRefresh(ctx context.Context, patientID string, ttl time.Duration) (bool, error) {
	if !validID(patientID) {
		return false, fmt.Errorf("debounce refresh: %w", invalid("debounce", "bad patient id"))
	}
	free, err := s.rdb.SetNX(ctx, s.key("debounce", "refresh", patientID), 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("debounce refresh of %s: %w", patientID, err)
	}
	return free, nil
}

// doneCountDays is how long a day's done counters are kept.
const doneCountDays = 8

func (s *Store) doneKey(day time.Time) string {
	return s.key("stats", "done", day.UTC().Format("2006-01-02"))
}

// CountDone adds one finished task of a queue and type to today's count
// (UTC, by the store's clock).
func (s *Store) CountDone(ctx context.Context, queue, taskType string) error {
	k := s.doneKey(s.now())
	pipe := s.rdb.Pipeline()
	pipe.HIncrBy(ctx, k, queue+"|"+taskType, 1)
	pipe.Expire(ctx, k, doneCountDays*24*time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("count done task: %w", err)
	}
	return nil
}

// DoneCount is how many tasks of a queue and type finished today.
type DoneCount struct {
	Queue, Type string
	N           int
}

// DoneToday returns today's counts of finished tasks (UTC), by queue and
// type.
func (s *Store) DoneToday(ctx context.Context) ([]DoneCount, error) {
	m, err := s.rdb.HGetAll(ctx, s.doneKey(s.now())).Result()
	if err != nil {
		return nil, fmt.Errorf("done today: %w", err)
	}
	out := make([]DoneCount, 0, len(m))
	for k, v := range m {
		q, t, _ := strings.Cut(k, "|")
		n, _ := strconv.Atoi(v)
		out = append(out, DoneCount{Queue: q, Type: t, N: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Queue != out[j].Queue {
			return out[i].Queue < out[j].Queue
		}
		return out[i].Type < out[j].Type
	})
	return out, nil
}
