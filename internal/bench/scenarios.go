package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/internal/loadgen"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Click scenario (issue 4): new patients, the sandbox answering in 50 ms.
const (
	clickClients   = 8
	clickPerClient = 25
	clickLatency   = 50 * time.Millisecond
	// clickRPM is the Cliniko budget in the click and import scenarios: high,
	// so the limiter's even spacing (one request per 300 ms per user at
	// 200/min) stays out of latency and throughput figures of back-to-back
	// work by one user. The burst scenario measures the limiter.
	clickRPM = 100000
)

// click measures scenario 2: click-to-patient for patients not yet
// imported, against a bare Cliniko GET of the same patients.
func (r *runner) click(ctx context.Context) error {
	sb := sandbox.New(sandbox.WithRateLimit(0))
	defer sb.Close()
	sb.SetLatency(clickLatency)
	e, err := r.newApp(ctx, appSpec{mode: app.ModeRun, sandbox: sb, rpm: clickRPM})
	if err != nil {
		return err
	}
	defer e.stop()
	if err := e.start(); err != nil {
		return err
	}
	hc := loadgen.NewHTTPClient(clickClients)
	var base *rig.Clinic
	res := &ClickResult{Latency: clickLatency}
	for run := 0; run < r.o.Runs; run++ {
		// A new subscription each run: its links are empty, so every
		// Cliniko patient is new to it.
		c, err := rig.SeedClinic(ctx, e.m.Store, sb, rig.ClinicSpec{Name: fmt.Sprintf("Click Clinic %d", run), Practitioners: clickClients, PatientsEach: clickPerClient, Reuse: base})
		if err != nil {
			return err
		}
		if base == nil {
			base = c
		}
		tokens, err := seedSessions(ctx, e.m.Store, c)
		if err != nil {
			return err
		}
		a, err := loadgen.Run(ctx, loadgen.Options{Clients: clickClients, MaxOps: clickClients * clickPerClient, Duration: 5 * time.Minute},
			func(ctx context.Context, client, i int) error {
				p := c.Practitioners[client]
				if i >= len(p.ClinikoPatients) {
					return nil
				}
				return click(ctx, hc, e.url, tokens[client], p.ClinikoPatients[i])
			})
		if err != nil {
			return err
		}
		// Baseline: the one Cliniko call an import needs, made directly
		// with the app's Cliniko client (limiter included).
		b, err := loadgen.Run(ctx, loadgen.Options{Clients: clickClients, MaxOps: clickClients * clickPerClient, Duration: 5 * time.Minute},
			func(ctx context.Context, client, i int) error {
				p := c.Practitioners[client]
				if i >= len(p.ClinikoPatients) {
					return nil
				}
				_, err := e.m.Cliniko.GetPatient(ctx, cliniko.Auth{Key: p.ClinikoKey, UserID: p.ClinikoUserID}, p.ClinikoPatients[i])
				return err
			})
		if err != nil {
			return err
		}
		if a.Errors > 0 || b.Errors > 0 {
			return fmt.Errorf("errors in run %d: app %d (%v), baseline %d (%v)", run, a.Errors, a.FirstErr, b.Errors, b.FirstErr)
		}
		res.App = append(res.App, a)
		res.Base = append(res.Base, b)
		r.logf("  run %d: click p50 %s p99 %s (%d clicks); Cliniko GET p50 %s p99 %s", run+1,
			loadgen.Ms(a.Percentile(50)), loadgen.Ms(a.Percentile(99)), a.Ops, loadgen.Ms(b.Percentile(50)), loadgen.Ms(b.Percentile(99)))
	}
	r.rep.Click = res
	return nil
}

// Import scenario (issue 8, item 3).
const (
	importPractitioners = 8
	importPerPract      = 150
)

// imports measures scenario 3: import jobs per second with a zero-latency
// sandbox against asynq's throughput of no-op tasks in the same worker
// set-up (jobs.NewWorker, same queues, concurrency and poll intervals),
// both on a fresh database of the same Redis, both timed from worker start
// to the last task completed, with every task queued beforehand.
func (r *runner) imports(ctx context.Context) error {
	sb := sandbox.New(sandbox.WithRateLimit(0))
	defer sb.Close()
	n := importPractitioners * importPerPract
	res := &ImportResult{Tasks: n}
	var base *rig.Clinic
	for run := 0; run < r.o.Runs; run++ {
		e, err := r.newApp(ctx, appSpec{mode: app.ModeWork, sandbox: sb, rpm: clickRPM})
		if err != nil {
			return err
		}
		c, err := rig.SeedClinic(ctx, e.m.Store, sb, rig.ClinicSpec{Name: "Import Clinic", Practitioners: importPractitioners, PatientsEach: importPerPract, Reuse: base})
		if err != nil {
			e.stop()
			return err
		}
		if base == nil {
			base = c
		}
		for _, p := range c.Practitioners {
			for _, cid := range p.ClinikoPatients {
				if _, err := e.m.Jobs.EnqueueImport(ctx, jobs.ImportPayload{PractitionerID: p.ID, SubscriptionID: c.Subscription.ID, Shard: "au1", ClinikoPatientID: cid}); err != nil {
					e.stop()
					return err
				}
			}
		}
		t0 := time.Now()
		if err := e.start(); err != nil {
			e.stop()
			return err
		}
		err = waitCompleted(ctx, e.m.Jobs.Inspector(), jobs.QueueImport, n, 5*time.Minute)
		appElapsed := time.Since(t0)
		e.stop()
		if err != nil {
			return err
		}
		baseElapsed, err := r.noopThroughput(ctx, n)
		if err != nil {
			return err
		}
		res.App = append(res.App, float64(n)/appElapsed.Seconds())
		res.Base = append(res.Base, float64(n)/baseElapsed.Seconds())
		r.logf("  run %d: %d imports in %s (%.0f/s); %d no-op tasks in %s (%.0f/s)", run+1, n, appElapsed.Round(time.Millisecond),
			res.App[run], n, baseElapsed.Round(time.Millisecond), res.Base[run])
	}
	r.rep.Import = res
	return nil
}

// noopThroughput runs n no-op tasks, queued like imports, through a
// jobs.Worker with the default configuration.
func (r *runner) noopThroughput(ctx context.Context, n int) (time.Duration, error) {
	rdb, err := redisClient(r.freshDB())
	if err != nil {
		return 0, err
	}
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	payload := []byte(`{"practitioner_id":"prc_aaaaaaaaaaaaaaaaaaaaaaaa","subscription_id":"sub_aaaaaaaaaaaaaaaaaaaaaaaa","shard":"au1","cliniko_patient_id":"836447129235883061"}`)
	for i := 0; i < n; i++ {
		opts := append(jobs.TaskOptions(jobs.TypeImportPatient), asynq.TaskID("noop:"+strconv.Itoa(i)))
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", payload), opts...); err != nil {
			return 0, err
		}
	}
	noop := asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })
	w := jobs.NewWorker(rdb, jobs.WorkerConfig{}, noop, nil, quietLog)
	t0 := time.Now()
	if err := w.Start(); err != nil {
		return 0, err
	}
	err = waitCompleted(ctx, asynq.NewInspectorFromRedisClient(rdb), jobs.QueueImport, n, 5*time.Minute)
	d := time.Since(t0)
	w.Shutdown()
	return d, err
}

// waitCompleted waits until n tasks of queue have completed.
func waitCompleted(ctx context.Context, insp *asynq.Inspector, queue string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		qi, err := insp.GetQueueInfo(queue)
		if err == nil {
			if qi.Completed >= n {
				return nil
			}
			if qi.Archived > 0 {
				return fmt.Errorf("%d tasks of queue %s failed", qi.Archived, queue)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("queue %s: %d tasks did not complete in %s", queue, n, timeout)
}

// PDF scenario: the pdf package's own benchmark, run with go test.
var pdfBenchLine = regexp.MustCompile(`^BenchmarkRender/(\S+?)-\d+\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) pdf-bytes\s+([\d.]+) B/op`)

// pdfCount is -count of the PDF benchmark.
const pdfCount = 6

// PDFCommand reproduces the PDF figures.
const PDFCommand = "go test ./pdf -run '^$' -bench Render -benchmem -count 6"

// pdf measures scenario 4 with BenchmarkRender (pdf/pdf_test.go).
func (r *runner) pdf(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", "test", "github.com/physitrack/pmsbridge/pdf", "-run", "^$", "-bench", "Render", "-benchmem", "-count", strconv.Itoa(pdfCount))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pdf benchmark: %w\n%s", err, out)
	}
	res := &PDFResult{Cases: map[string]*PDFCase{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := pdfBenchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		c := res.Cases[m[1]]
		if c == nil {
			c = &PDFCase{Name: m[1]}
			res.Cases[m[1]] = c
			res.Order = append(res.Order, m[1])
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		size, _ := strconv.ParseFloat(m[3], 64)
		alloc, _ := strconv.ParseFloat(m[4], 64)
		c.Ms = append(c.Ms, ns/1e6)
		c.Bytes = size
		c.AllocMB = append(c.AllocMB, alloc/1e6)
	}
	if len(res.Cases) == 0 {
		return fmt.Errorf("no BenchmarkRender results in:\n%s", out)
	}
	for _, name := range res.Order {
		c := res.Cases[name]
		r.logf("  %s: median %.1f ms, %.0f KB", name, loadgen.Median(c.Ms), c.Bytes/1000)
	}
	r.rep.PDF = res
	return nil
}

// Limiter scenario: the cliniko package's own benchmark of two Cliniko
// users flat out through two clients on one Redis.
var limiterBenchLine = regexp.MustCompile(`^BenchmarkLimiterTwoUsers-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) budget-used\s+([\d.]+) min-budget-used`)

// limiterArgs are the arguments of the go command that measures the
// limiter figures, one benchmark result per run.
func limiterArgs(runs int) []string {
	return []string{"test", "github.com/physitrack/pmsbridge/cliniko", "-run", "^$", "-bench", "LimiterTwoUsers", "-benchtime", "3x", "-count", strconv.Itoa(runs)}
}

// limiterCommand is the command line that reproduces runs limiter figures.
func limiterCommand(runs int) string {
	args := limiterArgs(runs)
	args[3] = "'^$'" // quoted for a shell
	return "go " + strings.Join(args, " ")
}

// limiter measures scenario 7 with BenchmarkLimiterTwoUsers
// (cliniko/limiter_test.go).
func (r *runner) limiter(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "go", limiterArgs(r.o.Runs)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("limiter benchmark: %w\n%s", err, out)
	}
	res := &LimiterResult{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := limiterBenchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		used, _ := strconv.ParseFloat(m[1], 64)
		low, _ := strconv.ParseFloat(m[2], 64)
		res.Used = append(res.Used, used)
		res.MinUsed = append(res.MinUsed, low)
	}
	if len(res.Used) == 0 {
		return fmt.Errorf("no BenchmarkLimiterTwoUsers results in:\n%s", out)
	}
	r.logf("  budget used: median %.2f (lower user %.2f)", loadgen.Median(res.Used), loadgen.Median(res.MinUsed))
	r.rep.Limiter = res
	return nil
}

// Burst scenario (issue 5).
const (
	burstUploads = 60
	burstRPM     = 1200
)

// burst measures scenario 5: 60 programme uploads for one practitioner.
func (r *runner) burst(ctx context.Context) error {
	res := &BurstResult{Uploads: burstUploads}
	for run := 0; run < min(r.o.Runs, 3); run++ {
		b, err := r.burstOnce(ctx, burstRPM, burstUploads, nil)
		if err != nil {
			return err
		}
		res.Fast = append(res.Fast, b)
		r.logf("  run %d at %d/min: %s", run+1, burstRPM, b)
	}
	if r.o.Real200 {
		b, err := r.burstOnce(ctx, sandbox.DefaultRateLimit, burstUploads, nil)
		if err != nil {
			return err
		}
		res.Real = append(res.Real, b)
		r.logf("  run at %d/min: %s", sandbox.DefaultRateLimit, b)
	}
	r.rep.Burst = res
	return nil
}

// BurstRun is one upload burst.
type BurstRun struct {
	RPM         int
	Elapsed     time.Duration
	Calls       int // Cliniko API calls (the budget), storage uploads excluded
	Storage     int // storage uploads (not on the budget)
	RateLimited int // 429s the sandbox answered
	Duplicates  int // versions with more than one attachment
	Missing     int // versions without an attachment
}

// Minimum is the least time the calls can take within the budget.
func (b BurstRun) Minimum() time.Duration {
	return time.Duration(float64(b.Calls) / float64(b.RPM) * float64(time.Minute))
}

// Ratio is elapsed over the minimum.
func (b BurstRun) Ratio() float64 { return b.Elapsed.Seconds() / b.Minimum().Seconds() }

func (b BurstRun) String() string {
	return fmt.Sprintf("%s for %d calls (minimum %s, %.2fx), %d 429s, %d duplicates, %d missing",
		b.Elapsed.Round(10*time.Millisecond), b.Calls, b.Minimum().Round(10*time.Millisecond), b.Ratio(), b.RateLimited, b.Duplicates, b.Missing)
}

// burstTarget is where a burst is sent: an in-process app, or a child
// process (the memory scenario).
type burstTarget struct {
	url   string
	store *store.Store
}

// burstOnce sends n signed programme webhooks for one practitioner's n
// linked patients and waits until every version is uploaded. With target
// nil it starts an in-process app with its own sandbox.
func (r *runner) burstOnce(ctx context.Context, rpm, n int, target func(sb *sandbox.Sandbox) (burstTarget, func(), error)) (BurstRun, error) {
	sb := sandbox.New(sandbox.WithRateLimit(rpm))
	defer sb.Close()
	var t burstTarget
	if target == nil {
		e, err := r.newApp(ctx, appSpec{mode: app.ModeRun, sandbox: sb, rpm: rpm})
		if err != nil {
			return BurstRun{}, err
		}
		defer e.stop()
		if err := e.start(); err != nil {
			return BurstRun{}, err
		}
		t = burstTarget{url: e.url, store: e.m.Store}
	} else {
		var stop func()
		var err error
		if t, stop, err = target(sb); err != nil {
			return BurstRun{}, err
		}
		defer stop()
	}
	c, err := rig.SeedClinic(ctx, t.store, sb, rig.ClinicSpec{Name: "Burst Clinic", Practitioners: 1, PatientsEach: n, Link: true})
	if err != nil {
		return BurstRun{}, err
	}
	p := c.Practitioners[0]
	before, limitedBefore := sb.Requests(), sb.RateLimited()
	hc := loadgen.NewHTTPClient(8)
	t0 := time.Now()
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := rig.ProgrammeEvent(fmt.Sprintf("evt_burst_%d", i), fmt.Sprintf("prg_burst_%d", i), 1, p.Patients[i], p.ID, 12)
			status, err := rig.PostWebhook(ctx, hc, t.url, body)
			if err == nil && status != http.StatusAccepted {
				err = fmt.Errorf("webhook %d: status %d", i, status)
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return BurstRun{}, firstErr
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		done := 0
		for i := 0; i < n; i++ {
			st, err := t.store.PDFStateOf(ctx, fmt.Sprintf("prg_burst_%d", i), 1)
			if err == nil && st.State == pmsbridge.PDFUploaded {
				done++
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			return BurstRun{}, fmt.Errorf("only %d of %d uploads done after 10 minutes", done, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b := BurstRun{RPM: rpm, Elapsed: time.Since(t0), RateLimited: sb.RateLimited() - limitedBefore}
	for op, n := range sb.Requests() {
		d := n - before[op]
		if op == "storage_upload" {
			b.Storage += d
		} else {
			b.Calls += d
		}
	}
	for _, cid := range p.ClinikoPatients {
		switch n := len(sb.Attachments(cid)); {
		case n == 0:
			b.Missing++
		case n > 1:
			b.Duplicates++
		}
	}
	return b, nil
}
