package cliniko

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// limiterMargin is the share of RequestsPerMinute the limiter actually lets
// through. Cliniko's window type is undocumented (UNCONFIRMED); the sandbox
// counts in fixed windows aligned to the minute. With a burst of 1, GCRA
// spaces requests evenly, so any 60 s span (and so any fixed window) holds
// at most 0.98×rate+1 requests: below the limit for rates of 50 and up,
// leaving a few requests of slack for network jitter between our decision
// and Cliniko's count. The cost is 2% of throughput.
const limiterMargin = 0.98

type ctxKey int

const noWaitKey ctxKey = 1

// WithoutWaiting returns a context under which the client does not wait for
// a free request slot: when the Cliniko user's budget is used up, the call
// fails at once with an *Error of cause cliniko_rate_limited whose RetryAt
// says when the next slot opens.
func WithoutWaiting(ctx context.Context) context.Context {
	return WithMaxWait(ctx, 0)
}

// WithMaxWait returns a context under which each call waits for a free
// request slot only when one opens within d; otherwise the call fails at
// once as under WithoutWaiting.
func WithMaxWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, noWaitKey, d)
}

// JobCallMaxWait bounds how long a job's call waits for its slot once an
// earlier call of the same job went out (ForJob). Slots are handed out in
// order and a job's first call only takes one that opens within its own
// short wait, so the line ahead of a later call is short; the bound only
// stops a pathological wait.
const JobCallMaxWait = time.Minute

// jobWait is the waiting rule of one run of a job (ForJob).
type jobWait struct {
	first   time.Duration
	started atomic.Bool
}

// ForJob returns a context for the Cliniko calls of one run of a job. Its
// first call waits for a request slot only when one opens within first;
// otherwise it fails at once (as under WithMaxWait) and the job can re-queue
// itself for when the slot opens, having done nothing and holding no
// worker. Once a call has gone out, the job's later calls wait for their
// slots (up to JobCallMaxWait): giving up then would make the job start
// again and repeat the calls it already made (an upload is 3 calls), which
// wastes the budget that every worker of the Cliniko user shares. Make a
// fresh one for each run; calls of unrelated work must not share it.
func ForJob(ctx context.Context, first time.Duration) context.Context {
	return context.WithValue(ctx, noWaitKey, &jobWait{first: first})
}

// maxWait is how long a call may wait for a slot (-1: as long as it takes),
// and the job whose call it is (nil when none).
func maxWait(ctx context.Context) (time.Duration, *jobWait) {
	switch v := ctx.Value(noWaitKey).(type) {
	case time.Duration:
		return v, nil
	case *jobWait:
		if v.started.Load() {
			return JobCallMaxWait, v
		}
		return v.first, v
	}
	return -1, nil
}

// limiter is the request budget per Cliniko user, shared through Redis by
// every process: GCRA with a burst of 1, where each call reserves the next
// free slot in one script and then sleeps until it. A burst of 1 staggers
// traffic evenly, which Cliniko asks for, and is what keeps a fixed-window
// counter from ever seeing more than the limit (a bigger burst lets up to
// rate+burst-1 requests into one window). Slots are handed out in order,
// one per interval, so waiting calls neither poll Redis nor lose slots to
// each other's timing: with many workers on one user, every slot is used.
type limiter struct {
	rdb      redis.UniversalClient
	key      func(budget string) string
	interval time.Duration // between two requests of one user
	now      func() time.Time
}

func newLimiter(b Budget, perMinute int, now func() time.Time) *limiter {
	period := float64(time.Minute) / limiterMargin
	return &limiter{rdb: b.Redis, key: b.Key, interval: time.Duration(math.Round(period / float64(perMinute))), now: now}
}

// reserveScript takes the next request slot of one budget unless it opens
// later than a bound. The value is the budget's theoretical arrival time
// (TAT: when its next slot opens), a number of seconds since 2017-01-01
// UTC by Redis's clock, under "rate:" + the budget's key: the key and
// format of github.com/go-redis/redis_rate, which older versions polled
// with, so old and new processes share one budget during a rolling
// upgrade. KEYS[1] the key; ARGV interval and bound (seconds; a negative
// bound: none). Returns {1, wait} when a slot was taken, {0, wait} when it
// opens later than the bound (nothing taken); wait is in seconds.
var reserveScript = redis.NewScript(`
redis.replicate_commands()
local interval = tonumber(ARGV[1])
local bound = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tat = now
local v = redis.call('GET', KEYS[1])
if v then tat = math.max(tonumber(v), now) end
local wait = tat - now
if bound >= 0 and wait > bound then
  return {0, tostring(wait)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'EX', math.ceil(next_tat - now))
return {1, tostring(wait)}
`)

// limiterKey names a Cliniko user's budget: shard + ":" + user id, or, while
// the user id is not known yet (checking a new key), shard + ":k:" + the
// first 16 hex digits of the key's SHA-256 — never the key itself.
func limiterKey(shard string, a Auth) string {
	if a.UserID != "" {
		return shard + ":" + a.UserID
	}
	sum := sha256.Sum256([]byte(a.Key))
	return shard + ":k:" + hex.EncodeToString(sum[:])[:16]
}

// errLimited is returned by take when the next slot opens later than the
// caller may wait.
type errLimited struct{ retryAt time.Time }

func (e errLimited) Error() string { return "request budget used up" }

// take claims one request slot for key and waits for it (honouring ctx),
// unless it opens later than the context allows (WithoutWaiting,
// WithMaxWait, ForJob): then it returns errLimited, having taken nothing.
// It returns how long it waited.
func (l *limiter) take(ctx context.Context, key string) (time.Duration, error) {
	start := time.Now()
	bound, job := maxWait(ctx)
	boundSec := -1.0
	if bound >= 0 {
		boundSec = bound.Seconds()
	}
	res, err := reserveScript.Run(ctx, l.rdb, []string{"rate:" + l.key(key)}, l.interval.Seconds(), boundSec).Slice()
	if err != nil {
		return time.Since(start), fmt.Errorf("rate limiter: %w", err)
	}
	taken, wait, err := parseReservation(res)
	if err != nil {
		return time.Since(start), fmt.Errorf("rate limiter: %w", err)
	}
	if !taken {
		return time.Since(start), errLimited{retryAt: l.now().Add(wait)}
	}
	if job != nil {
		job.started.Store(true)
	}
	if err := sleep(ctx, wait); err != nil {
		return time.Since(start), err // the slot goes unused
	}
	return time.Since(start), nil
}

// parseReservation reads reserveScript's answer.
func parseReservation(res []any) (bool, time.Duration, error) {
	if len(res) != 2 {
		return false, 0, fmt.Errorf("unexpected answer %v", res)
	}
	taken, ok := res[0].(int64)
	s, ok2 := res[1].(string)
	if !ok || !ok2 {
		return false, 0, fmt.Errorf("unexpected answer %v", res)
	}
	sec, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return false, 0, fmt.Errorf("unexpected wait %q: %w", s, err)
	}
	return taken == 1, time.Duration(math.Max(sec, 0) * float64(time.Second)), nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
