package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// limitKey is one sliding-window counter of attempts: a sorted set of
// attempts scored by their time (unix ms, from the injected clock).
type limitKey struct {
	scope string // "account", "client", "code": named in LockedError
	key   string
	max   int
}

// limitKeyOf names a counter. Every counter carries the hash tag {lim}, so
// the counters of one attempt live in one Cluster slot and one script can
// reserve them all.
func (s *Store) limitKeyOf(parts ...string) string {
	return s.key(append([]string{"{lim}"}, parts...)...)
}

// reservation is the slot an attempt holds in each of its counters while
// its secret is checked. A failed check keeps it (it is the failure); an
// attempt that was not checked, or succeeded, gives it back.
type reservation struct {
	keys   []string
	member string
	// counts are the attempts in each counter's window, this one included.
	counts []int
}

// reserveScript counts an attempt and decides in one step: it takes a
// slot in every counter only if each has fewer than its max attempts in the
// window, else it takes none and says which counter is full and until when.
// Attempts that were refused are not counted, so a lock ends a fixed time
// after the attempts that caused it.
//
// KEYS counters; ARGV now ms, window ms, member, then the max of each key.
// Returns {1,0,0, count of each counter} when reserved (the attempt
// included), {0, index of the full counter, until ms} when locked.
var reserveScript = redis.NewScript(`
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local locked, until_ = 0, 0
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
  local max = tonumber(ARGV[3 + i])
  local n = redis.call('ZCARD', k)
  if n >= max then
    -- Locked until enough attempts leave the window that fewer than max
    -- remain: until the (n-max)th oldest does.
    local e = redis.call('ZRANGE', k, n - max, n - max, 'WITHSCORES')
    local u = tonumber(e[2]) + window
    if u > until_ then locked, until_ = i, u end
  end
end
if locked > 0 then return {0, locked, until_} end
local out = {1, 0, 0}
for _, k in ipairs(KEYS) do
  redis.call('ZADD', k, now, ARGV[3])
  redis.call('PEXPIRE', k, window)
  out[#out + 1] = redis.call('ZCARD', k)
end
return out
`)

// reserve takes a slot for one attempt in every counter of keys (one
// round trip), or returns a *LockedError naming the counter that is full
// and when it frees up. Of any number of simultaneous attempts at most max
// get a slot in a counter, so at most max are checked.
func (s *Store) reserve(ctx context.Context, keys []limitKey, window time.Duration) (reservation, error) {
	if len(keys) == 0 {
		return reservation{}, nil
	}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	now := s.now()
	res := reservation{member: strconv.FormatInt(now.UnixNano(), 10) + "-" + hex.EncodeToString(nonce)}
	args := []any{now.UnixMilli(), window.Milliseconds(), res.member}
	for _, k := range keys {
		res.keys = append(res.keys, k.key)
		args = append(args, k.max)
	}
	out, err := reserveScript.Run(ctx, s.rdb, res.keys, args...).Int64Slice()
	if err != nil {
		return reservation{}, fmt.Errorf("reserve attempt: %w", err)
	}
	if len(out) < 3 {
		return reservation{}, errors.New("reserve attempt: unexpected script reply")
	}
	if out[0] == 1 {
		for _, n := range out[3:] {
			res.counts = append(res.counts, int(n))
		}
		return res, nil
	}
	scope := ""
	if i := int(out[1]) - 1; i >= 0 && i < len(keys) {
		scope = keys[i].scope
	}
	return reservation{}, &LockedError{Scope: scope, Until: time.UnixMilli(out[2]).UTC()}
}

// release gives back an attempt's slots (it was not checked, or it
// succeeded); clear empties whole counters as well (a successful login
// forgets the account's failures). It runs even when the request's context
// is done: a slot kept by mistake would count as a failure.
func (s *Store) release(ctx context.Context, res reservation, clear ...string) error {
	if len(res.keys) == 0 && len(clear) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	pipe := s.rdb.Pipeline()
	for _, k := range res.keys {
		pipe.ZRem(ctx, k, res.member)
	}
	for _, k := range clear {
		pipe.Del(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("release attempt: %w", err)
	}
	return nil
}

// left is how many more attempts the counters of keys allow after the
// ones counted in res (the fewest of any counter); -1 when there are no
// counters.
func (res reservation) left(keys []limitKey) int {
	left := -1
	for i, k := range keys {
		if i >= len(res.counts) {
			break
		}
		if n := max(0, k.max-res.counts[i]); left < 0 || n < left {
			left = n
		}
	}
	return left
}

// lockOf reads one counter without counting an attempt: the attempts in its
// window, and until when it is full (zero when it is not).
func (s *Store) lockOf(ctx context.Context, k limitKey, window time.Duration) (int, time.Time, error) {
	now := s.now()
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, k.key, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.Add(-window).UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read attempts: %w", err)
	}
	n := len(zs)
	if n < k.max || k.max <= 0 {
		return n, time.Time{}, nil
	}
	return n, time.UnixMilli(int64(zs[n-k.max].Score)).Add(window).UTC(), nil
}
