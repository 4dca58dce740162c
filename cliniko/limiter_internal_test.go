package cliniko

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// TestLimiterSharesBudgetWithOlderVersions: older versions polled the same
// budgets with redis_rate (same key, same value); during a rolling upgrade
// an old and a new process on one Redis share one budget per user, not two.
// With one slot a minute nothing here depends on timing.
func TestLimiterSharesBudgetWithOlderVersions(t *testing.T) {
	t.Parallel()
	b := BudgetForTests(t)
	l := newLimiter(b, 1, time.Now)
	old := redis_rate.NewLimiter(b.Redis)
	oldLimit := redis_rate.Limit{Rate: 1, Burst: 1, Period: time.Duration(math.Round(float64(time.Minute) / limiterMargin))}
	ctx := WithoutWaiting(context.Background())

	// A new process takes user 1's slot: an old one finds none.
	if _, err := l.take(ctx, "au1:1"); err != nil {
		t.Fatal(err)
	}
	res, err := old.Allow(ctx, b.Key("au1:1"), oldLimit)
	if err != nil || res.Allowed != 0 || res.RetryAfter < 50*time.Second {
		t.Errorf("old limiter after the new one took the slot: %+v, %v; want refused for about a minute", res, err)
	}
	// An old process takes user 2's slot: a new one finds none.
	if res, err := old.Allow(ctx, b.Key("au1:2"), oldLimit); err != nil || res.Allowed != 1 {
		t.Fatalf("old limiter on a fresh budget: %+v, %v", res, err)
	}
	var el errLimited
	if _, err := l.take(ctx, "au1:2"); !errors.As(err, &el) || time.Until(el.retryAt) < 50*time.Second {
		t.Errorf("new limiter after the old one took the slot: %v; want refused for about a minute", err)
	}
}

// TestForJob: a job's first call takes a slot only when one is free within
// its wait; once one of its calls went out, its later calls wait for their
// slots instead of giving up. Slots are 10 s apart here, so a refusal does
// not depend on timing, and the waiting call is cut short by its deadline.
func TestForJob(t *testing.T) {
	t.Parallel()
	l := newLimiter(BudgetForTests(t), 6, time.Now)
	bg := context.Background()
	job := ForJob(bg, 0)
	if _, err := l.take(job, "au1:1"); err != nil {
		t.Fatalf("the job's first call on a free budget: %v", err)
	}
	var el errLimited
	if _, err := l.take(WithoutWaiting(bg), "au1:1"); !errors.As(err, &el) {
		t.Errorf("a call without waiting: %v; want refused", err)
	}
	if _, err := l.take(ForJob(bg, time.Second), "au1:1"); !errors.As(err, &el) {
		t.Errorf("another job's first call: %v; want refused (the slot is 10 s away)", err)
	}
	ctx, cancel := context.WithTimeout(job, 50*time.Millisecond)
	defer cancel()
	if _, err := l.take(ctx, "au1:1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the job's second call: %v; want it waiting for its slot (cut off by the deadline)", err)
	}
}
