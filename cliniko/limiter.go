package cliniko

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// limiterMargin is the share of RequestsPerMinute the limiter actually lets
// through. Cliniko's window type is undocumented (UNCONFIRMED); the sandbox
// counts in fixed windows aligned to the minute. With a burst of 1, GCRA
// spaces requests evenly, so any 60 s span (and so any fixed window) holds
// at most 0.98×rate+1 requests: below the limit for rates of 50 and up,
// leaving a few requests of slack for network jitter between our decision
// and Cliniko's count. The cost is 2% of throughput.
const limiterMargin = 0.98

// limiterBurst is how many requests may go out back to back. 1 staggers
// traffic evenly, which Cliniko asks for, and is what keeps a fixed-window
// counter from ever seeing more than the limit: a bigger burst lets up to
// rate+burst-1 requests into one window.
const limiterBurst = 1

type ctxKey int

const noWaitKey ctxKey = 1

// WithoutWaiting returns a context under which the client does not wait for
// a free request slot: when the Cliniko user's budget is used up, the call
// fails at once with an *Error of cause cliniko_rate_limited whose RetryAt
// says when the next slot opens. Jobs use it to re-queue instead of holding
// a worker.
func WithoutWaiting(ctx context.Context) context.Context {
	return WithMaxWait(ctx, 0)
}

// WithMaxWait returns a context under which the client waits for a free
// request slot only when one opens within d; otherwise the call fails at
// once as under WithoutWaiting. Jobs use a few seconds: a short wait keeps
// a multi-call job (an upload is 3 calls) going instead of re-queueing it
// and repeating its first calls.
func WithMaxWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, noWaitKey, d)
}

// maxWait is how long a call may wait for a slot (-1: as long as it takes).
func maxWait(ctx context.Context) time.Duration {
	if v, ok := ctx.Value(noWaitKey).(time.Duration); ok {
		return v
	}
	return -1
}

// limiter is the request budget per Cliniko user, shared through Redis by
// every process (GCRA, github.com/go-redis/redis_rate).
type limiter struct {
	rl    *redis_rate.Limiter
	key   func(budget string) string
	limit redis_rate.Limit
	now   func() time.Time
}

func newLimiter(b Budget, perMinute int, now func() time.Time) *limiter {
	period := time.Duration(math.Round(float64(time.Minute) / limiterMargin))
	return &limiter{
		rl:    redis_rate.NewLimiter(b.Redis),
		key:   b.Key,
		limit: redis_rate.Limit{Rate: perMinute, Burst: limiterBurst, Period: period},
		now:   now,
	}
}

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

// errLimited is returned by take when the caller asked not to wait.
type errLimited struct{ retryAt time.Time }

func (e errLimited) Error() string { return "request budget used up" }

// take claims one request slot for key. It waits (honouring ctx) unless ctx
// came from WithoutWaiting, in which case it returns errLimited when no slot
// is free. It returns how long it waited.
func (l *limiter) take(ctx context.Context, key string) (time.Duration, error) {
	start := time.Now()
	for {
		res, err := l.rl.Allow(ctx, l.key(key), l.limit)
		if err != nil {
			return time.Since(start), fmt.Errorf("rate limiter: %w", err)
		}
		if res.Allowed > 0 {
			return time.Since(start), nil
		}
		wait := res.RetryAfter
		if wait <= 0 {
			wait = time.Millisecond
		}
		if mw := maxWait(ctx); mw >= 0 && time.Since(start)+wait > mw {
			return time.Since(start), errLimited{retryAt: l.now().Add(wait)}
		}
		// A little jitter so that workers waiting on the same user do not all
		// ask Redis at the same instant; kept small, because every moment
		// slept past RetryAfter is a slot lost (the slot opens exactly then).
		wait += time.Duration(rand.Int64N(min(int64(wait)/50, int64(2*time.Millisecond)) + 1))
		if err := sleep(ctx, wait); err != nil {
			return time.Since(start), err
		}
	}
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
