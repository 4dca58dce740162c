package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// limitKey is one sliding-window failure counter: a sorted set of failures
// scored by their time (unix ms, from the injected clock).
type limitKey struct {
	scope string // "account", "ip", "code": named in LockedError
	key   string
	max   int
}

// checkLimits returns a *LockedError when any counter has max or more
// failures within window. One round trip. Locked attempts are not counted,
// so a lock ends a fixed time after the failures that caused it.
func (s *Store) checkLimits(ctx context.Context, keys []limitKey, window time.Duration) error {
	now := s.now()
	from := now.Add(-window).UnixMilli()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.ZRangeByScoreWithScores(ctx, k.key, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(from, 10), Max: "+inf"})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	var locked *LockedError
	for i, k := range keys {
		zs := cmds[i].Val()
		if len(zs) < k.max {
			continue
		}
		// Locked until enough failures leave the window that fewer than
		// max remain: until the (n-max)th oldest does.
		oldest := zs[len(zs)-k.max]
		until := time.UnixMilli(int64(oldest.Score)).Add(window).UTC()
		if locked == nil || until.After(locked.Until) {
			locked = &LockedError{Scope: k.scope, Until: until}
		}
	}
	if locked != nil {
		return locked
	}
	return nil
}

// recordFailure adds a failure to every counter, trims what left the window
// and keeps each key only as long as the window. One round trip.
func (s *Store) recordFailure(ctx context.Context, keys []limitKey, window time.Duration) error {
	now := s.now()
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	member := strconv.FormatInt(now.UnixNano(), 10) + "-" + hex.EncodeToString(nonce)
	pipe := s.rdb.Pipeline()
	for _, k := range keys {
		pipe.ZAdd(ctx, k.key, redis.Z{Score: float64(now.UnixMilli()), Member: member})
		pipe.ZRemRangeByScore(ctx, k.key, "-inf", strconv.FormatInt(now.Add(-window).UnixMilli(), 10))
		pipe.PExpire(ctx, k.key, window)
	}
	_, err := pipe.Exec(ctx)
	return err
}
