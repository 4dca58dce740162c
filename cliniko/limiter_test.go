package cliniko_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
)

// spacing is the limiter's gap between two requests of one user at rpm
// requests per minute (it keeps a 2% margin below the budget).
func spacing(rpm int) time.Duration {
	return time.Duration(float64(time.Minute) / (float64(rpm) * 0.98))
}

// TestLimiterSharedBudgets: each Cliniko user has one budget, shared by
// every process on the Redis (two clients here), and apart from other
// users'. With a budget of one request a minute, 50 simultaneous calls per
// user from two clients let exactly one through per user and refuse the
// rest at once with a retry time, however fast or slow the machine is
// (nothing here depends on timing: the next slot is a minute away).
func TestLimiterSharedBudgets(t *testing.T) {
	sb := sandbox.NewDemo(sandbox.WithRateLimit(0))
	t.Cleanup(sb.Close)
	shared := cliniko.BudgetForTests(t)
	newClient := func() *cliniko.Client {
		c, err := cliniko.New(cliniko.Config{BaseURL: sb.BaseURL(), UserAgent: testUA, RequestsPerMinute: 1}, shared)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	clients := []*cliniko.Client{newClient(), newClient()} // two processes
	users := []cliniko.Auth{
		{Key: sandbox.DemoAdminKey, UserID: "1"},
		{Key: sandbox.DemoPractitionerKey, UserID: "2"},
	}
	ctx := cliniko.WithoutWaiting(context.Background())
	const calls = 50
	var allowed, refused [2]atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for u, a := range users {
		for i := range calls {
			wg.Go(func() {
				_, err := clients[i%2].GetUser(ctx, a)
				var e *cliniko.Error
				switch {
				case err == nil:
					allowed[u].Add(1)
				case errors.As(err, &e) && e.Cause == pmsbridge.CauseClinikoRateLimited && e.RetryAt.After(start):
					refused[u].Add(1)
				default:
					t.Errorf("user %d: %v", u, err)
				}
			})
		}
	}
	wg.Wait()
	for u := range users {
		if a, r := allowed[u].Load(), refused[u].Load(); a != 1 || r != calls-1 {
			t.Errorf("user %d: %d let through, %d refused; want 1 and %d", u, a, r, calls-1)
		}
	}
	if n := sb.RequestCount("get_user"); n != len(users) {
		t.Errorf("Cliniko got %d requests, want %d (one per user)", n, len(users))
	}
}

// BenchmarkLimiterTwoUsers runs two Cliniko users flat out for a second
// through two clients sharing one Redis (as two processes would), four
// workers per user, at 6000 requests per minute each, and reports each
// user's requests against the budget the limiter allows in that time
// (budget-used: 1.0 is every slot used, above 1.0 over the budget) and
// the lower of the two (min-budget-used: well below the other means one
// user slowed the other down).
//
//	go test ./cliniko -run '^$' -bench LimiterTwoUsers -benchtime 3x
func BenchmarkLimiterTwoUsers(b *testing.B) {
	sb := sandbox.NewDemo(sandbox.WithRateLimit(0))
	b.Cleanup(sb.Close)
	const rpm = 6000 // one request per ~10 ms per user
	users := []cliniko.Auth{
		{Key: sandbox.DemoAdminKey, UserID: "1"},
		{Key: sandbox.DemoPractitionerKey, UserID: "2"},
	}
	var used, minUsed float64
	runs := 0
	for b.Loop() {
		shared := cliniko.BudgetForTests(b) // a fresh database: fresh budgets
		var clients []*cliniko.Client
		for range 2 {
			c, err := cliniko.New(cliniko.Config{BaseURL: sb.BaseURL(), UserAgent: testUA, RequestsPerMinute: rpm}, shared)
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
		}
		counts := make([]atomic.Int64, len(users))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		var wg sync.WaitGroup
		for u, a := range users {
			for w := range 4 {
				wg.Go(func() {
					for {
						if _, err := clients[w%2].GetUser(ctx, a); err != nil {
							if ctx.Err() == nil {
								b.Errorf("user %d: %v", u, err)
							}
							return
						}
						counts[u].Add(1)
					}
				})
			}
		}
		wg.Wait()
		cancel()
		budget := 1 + float64(time.Since(start)/spacing(rpm)) // GCRA, burst 1: first at once, then one per spacing
		low := math.Inf(1)
		for u := range users {
			r := float64(counts[u].Load()) / budget
			used += r
			low = min(low, r)
		}
		minUsed += low
		runs++
	}
	b.ReportMetric(used/float64(runs*len(users)), "budget-used")
	b.ReportMetric(minUsed/float64(runs), "min-budget-used")
}

// TestWithoutWaiting: a full budget gives cliniko_rate_limited with RetryAt
// at once, sends nothing, and leaves other users alone; without the option
// the call waits for its slot.
func TestWithoutWaiting(t *testing.T) {
	sb := sandbox.NewDemo(sandbox.WithRateLimit(0))
	t.Cleanup(sb.Close)
	var waits []time.Duration
	var mu sync.Mutex
	// A slot every ~2 s: wide enough that a slow (race-detector, loaded CI)
	// machine still makes the next call inside the same slot.
	const rpm = 30
	c, err := cliniko.New(cliniko.Config{BaseURL: sb.BaseURL(), UserAgent: testUA, RequestsPerMinute: rpm}, cliniko.BudgetForTests(t),
		cliniko.WithObserver(func(_ context.Context, c cliniko.Call) {
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, c.LimiterWait)
		}))
	if err != nil {
		t.Fatal(err)
	}
	admin := cliniko.Auth{Key: sandbox.DemoAdminKey, UserID: "1"}
	ctx := context.Background()
	if _, err := c.GetUser(ctx, admin); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	_, err = c.GetUser(cliniko.WithoutWaiting(ctx), admin)
	var e *cliniko.Error
	if !errors.As(err, &e) || e.Cause != pmsbridge.CauseClinikoRateLimited || e.Status != 0 {
		t.Fatalf("err = %v, want a limiter refusal", err)
	}
	// The slot opens one spacing after the first call, which was before
	// `before`; the limiter reckons by Redis's clock, which may be a few
	// milliseconds off ours, hence the small allowance.
	const clockSkew = 100 * time.Millisecond
	if e.RetryAt.Before(before.Add(-clockSkew)) || e.RetryAt.After(before.Add(spacing(rpm)+clockSkew)) {
		t.Errorf("RetryAt = %s, want within %s of %s", e.RetryAt, spacing(rpm), before)
	}
	if n := sb.RequestCount("get_user"); n != 1 {
		t.Errorf("requests = %d, want 1 (the refused call sends nothing)", n)
	}
	if _, err := c.GetUser(cliniko.WithoutWaiting(ctx), cliniko.Auth{Key: sandbox.DemoReceptionistKey, UserID: "3"}); err != nil {
		t.Errorf("another user was refused: %v", err)
	}
	// WithMaxWait shorter than the slot: refused; longer: it waits.
	if _, err := c.GetUser(cliniko.WithMaxWait(ctx, 50*time.Millisecond), admin); !errors.As(err, &e) || e.Cause != pmsbridge.CauseClinikoRateLimited {
		t.Errorf("max wait shorter than the slot: err = %v, want a limiter refusal", err)
	}
	if _, err := c.GetUser(cliniko.WithMaxWait(ctx, time.Minute), admin); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if w := waits[len(waits)-1]; w < spacing(rpm)/4 {
		t.Errorf("waiting call waited %s, want about %s", w, spacing(rpm))
	}
}

// uploadBurst is the outcome of runUploadBurst.
type uploadBurst struct {
	calls       int           // Cliniko API calls (storage uploads not counted)
	rateLimited int           // 429s the sandbox answered
	attachments int           // attachments made, over all patients
	elapsed     time.Duration // wall-clock time of the burst
	ideal       time.Duration // calls at exactly the client's rate
}

// runUploadBurst runs 60 uploads, each with its duplicate check (list,
// presign, storage, create: 180 Cliniko calls), from 8 workers against the
// sandbox's fixed one-minute windows. The sandbox's clock runs 15 times
// faster than real time, so its minute is 4 s and its budget of 200 per
// minute is 3000 per real minute, the client's setting: the run crosses
// window boundaries like a real one, in a few seconds.
func runUploadBurst(tb testing.TB) uploadBurst {
	tb.Helper()
	const speed = 15
	realStart := time.Now()
	base := time.Date(2026, 11, 22, 10, 0, 50, 0, time.UTC) // a boundary 0.7 s in
	clock := func() time.Time { return base.Add(speed * time.Since(realStart)) }
	sb := sandbox.NewDemo(sandbox.WithClock(clock), sandbox.WithRateLimit(sandbox.DefaultRateLimit))
	defer sb.Close()
	const rpm = sandbox.DefaultRateLimit * speed
	c, err := cliniko.New(cliniko.Config{BaseURL: sb.BaseURL(), UserAgent: testUA, RequestsPerMinute: rpm}, cliniko.BudgetForTests(tb))
	if err != nil {
		tb.Fatal(err)
	}
	admin := cliniko.Auth{Key: sandbox.DemoAdminKey, UserID: "1"}
	patients := []string{"1001", "1002", "836447129235882001", "836447129235882002", "836447129235882003", "836447129235882004"}
	const uploads = 60
	jobs := make(chan int)
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				pid := patients[i%len(patients)]
				if _, err := c.ListAttachments(ctx, admin, pid); err != nil {
					tb.Errorf("list: %v", err)
					continue
				}
				if _, err := c.UploadAttachment(ctx, admin, pid, "programme.pdf", "Programme", []byte("%PDF-1.4")); err != nil {
					tb.Errorf("upload: %v", err)
				}
			}
		})
	}
	for i := range uploads {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	r := uploadBurst{elapsed: time.Since(start), rateLimited: sb.RateLimited()}
	r.calls = sb.RequestCount("list_attachments") + sb.RequestCount("presign") + sb.RequestCount("create_attachment")
	r.ideal = time.Duration(float64(r.calls) / rpm * float64(time.Minute))
	for _, pid := range patients {
		r.attachments += len(sb.Attachments(pid))
	}
	return r
}

// TestBurstOfUploadsSeesNo429: a burst of uploads at the client's full rate
// gets no 429 from Cliniko and every upload lands once. How close the burst
// comes to the ideal duration is BenchmarkUploadBurst's business (house
// rule: no timed assertions in tests).
func TestBurstOfUploadsSeesNo429(t *testing.T) {
	r := runUploadBurst(t)
	t.Logf("%d Cliniko calls in %s; calls/rpm = %s", r.calls, r.elapsed.Round(time.Millisecond), r.ideal)
	if r.calls != 3*60 {
		t.Errorf("calls = %d, want %d", r.calls, 3*60)
	}
	if r.attachments != 60 {
		t.Errorf("attachments = %d, want 60", r.attachments)
	}
	if r.rateLimited != 0 {
		t.Errorf("sandbox answered %d 429s, want none", r.rateLimited)
	}
}

// BenchmarkUploadBurst measures how close a burst of 60 uploads comes to
// the client's request budget: elapsed/ideal is the burst's wall-clock time
// over the time its calls take at exactly RequestsPerMinute (1.0 is
// perfect; the limiter's 2% margin alone makes it about 1.02).
//
//	go test ./cliniko -run '^$' -bench BenchmarkUploadBurst -benchtime 3x
func BenchmarkUploadBurst(b *testing.B) {
	var ratio float64
	n := 0
	for b.Loop() {
		r := runUploadBurst(b)
		if r.rateLimited != 0 {
			b.Errorf("sandbox answered %d 429s", r.rateLimited)
		}
		ratio += float64(r.elapsed) / float64(r.ideal)
		n++
	}
	b.ReportMetric(ratio/float64(n), "elapsed/ideal")
}
