// Package bench runs pmsbridge's load scenarios on this machine and writes
// docs/benchmarks.md (cmd/pmsbridge-bench; `make bench`). Each scenario is
// measured against a baseline in the same run, on the same private
// redis-server, and repeated; the report gives medians. Everything runs on
// 127.0.0.1 and every load is bounded in time and request count.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// Options configure a benchmark run.
type Options struct {
	// Runs is how many times each scenario is repeated. Default 5.
	Runs int
	// Duration is the length of one throughput run. Default 4s.
	Duration time.Duration
	// Only runs the scenarios whose names (receiver, click, import, pdf,
	// burst, memory, limiter, login, codes, synccost, workers, capacity)
	// it holds; empty runs them all.
	Only []string
	// Real200 adds one upload burst at the real 200 requests per minute.
	Real200 bool
	// SyncBeforeRev is the git revision whose sync the synccost scenario
	// measures as "before" (built from this repository). Default
	// DefaultSyncBeforeRev; "-" measures only this tree.
	SyncBeforeRev string
	// CapacityScale scales the capacity scenario's data set (1: 2,000
	// practitioners, 100,000 patients, 300,000 programme versions). Default
	// 1.
	CapacityScale float64
	// Progress receives progress lines. Default os.Stderr.
	Progress io.Writer
}

func (o Options) withDefaults() Options {
	if o.Runs == 0 {
		o.Runs = 5
	}
	if o.Duration == 0 {
		o.Duration = 4 * time.Second
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.CapacityScale <= 0 {
		o.CapacityScale = 1
	}
	switch o.SyncBeforeRev {
	case "":
		o.SyncBeforeRev = DefaultSyncBeforeRev
	case "-":
		o.SyncBeforeRev = ""
	}
	return o
}

func (o Options) wants(name string) bool {
	if len(o.Only) == 0 {
		return true
	}
	for _, n := range o.Only {
		if n == name {
			return true
		}
	}
	return false
}

// runner holds what the scenarios share: one redis-server and a counter of
// fresh logical databases on it.
type runner struct {
	o      Options
	dir    string // the run's scratch directory
	redis  *redistest.Server
	nextDB atomic.Int64
	rep    *Report
	bins   binaries
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// redisClient opens a client on a database URL with the app's client
// options.
func redisClient(url string) (redis.UniversalClient, error) {
	ru, err := config.ParseRedisURL(url)
	if err != nil {
		return nil, err
	}
	return ru.Client(), nil
}

// freshDB returns the URL of an unused logical database.
func (r *runner) freshDB() string {
	return r.redis.URL(int(r.nextDB.Add(1)))
}

// Run runs the scenarios and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	o = o.withDefaults()
	dir, err := os.MkdirTemp("", "pmsbridge-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Production runs Redis with AOF (everysec); so does the benchmark.
	srv, err := redistest.Launch(dir, true)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	r := &runner{o: o, dir: dir, redis: srv, rep: newReport(o)}
	r.rep.Machine = machineInfo(ctx)
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"receiver", r.receiver},
		{"click", r.click},
		{"import", r.imports},
		{"pdf", r.pdf},
		{"burst", r.burst},
		{"memory", r.memory},
		{"limiter", r.limiter},
		{"login", r.login},
		{"codes", r.codes},
		{"synccost", r.syncCost},
		{"workers", r.workers},
		{"capacity", r.capacity},
	}
	for _, s := range steps {
		if !o.wants(s.name) {
			continue
		}
		r.logf("scenario %s", s.name)
		if err := s.fn(ctx); err != nil {
			return r.rep, fmt.Errorf("scenario %s: %w", s.name, err)
		}
	}
	return r.rep, nil
}

// appEnv is an in-process pmsbridge app on its own database.
type appEnv struct {
	m        *app.Main
	url      string
	redisURL string
	cancel   context.CancelFunc
	done     chan error
}

type appSpec struct {
	mode    app.Mode
	sandbox *sandbox.Sandbox
	rpm     int
	// configure adjusts the configuration and options, if set.
	configure func(*config.Config, *app.Options)
}

// newApp builds an app on a fresh database; start runs it.
func (r *runner) newApp(ctx context.Context, s appSpec) (*appEnv, error) {
	redisURL := r.freshDB()
	cfg := config.Config{
		Region: "au", PublicURL: rig.PublicURL,
		HTTP:     config.HTTP{Addr: "127.0.0.1:0", ExtraHosts: []string{"127.0.0.1"}},
		Redis:    config.Redis{URL: redisURL},
		Cliniko:  config.Cliniko{BaseURL: s.sandbox.BaseURL(), UserAgent: rig.UserAgent, RequestsPerMinute: s.rpm},
		Secrets:  config.Secrets{EncryptionKey: rig.NewEncryptionKey()},
		Webhooks: config.Webhooks{Secret: rig.WebhookSecret},
		Admin:    config.Admin{Token: rig.AdminToken},
		Log:      config.Log{Format: "json", Level: "info"}, // production's level; the lines go nowhere
	}.WithDefaults()
	opts := app.Options{Mode: s.mode, Version: "bench", Out: io.Discard, LogOut: io.Discard, RedisWait: 5 * time.Second}
	if s.configure != nil {
		s.configure(&cfg, &opts)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts.Config = cfg
	m, err := app.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &appEnv{m: m, url: m.URL(), redisURL: redisURL, done: make(chan error, 1)}, nil
}

func (e *appEnv) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- e.m.Run(ctx) }()
	if e.url == "" {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(e.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("app did not become healthy")
}

func (e *appEnv) stop() {
	if e.cancel != nil {
		e.cancel()
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
		}
	}
	e.m.Close()
}

// queueIdle waits until queue has nothing pending, scheduled, retrying or
// running.
func queueIdle(ctx context.Context, insp *asynq.Inspector, queue string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		qi, err := insp.GetQueueInfo(queue)
		if err != nil && !queueMissing(err) {
			return err
		}
		if err != nil || qi.Pending+qi.Active+qi.Scheduled+qi.Retry == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("queue %s did not drain in %s", queue, timeout)
}

// queueMissing reports whether err is asynq saying that a queue does not
// exist (nothing was ever queued there): an idle queue. asynq's inspector
// answers it as "NOT_FOUND: queue … does not exist", not as
// asynq.ErrQueueNotFound.
func queueMissing(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "not found") || strings.Contains(s, "not_found")
}

// seedSessions logs every practitioner of c in (a session each) and returns
// the session tokens.
func seedSessions(ctx context.Context, st *store.Store, c *rig.Clinic) ([]string, error) {
	var tokens []string
	for _, p := range c.Practitioners {
		tok, _, err := st.CreateSession(ctx, p.ID, "127.0.0.1", "pmsbridge-bench")
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, tok)
	}
	return tokens, nil
}

// click sends one Cliniko button click with a session and follows the app
// like the waiting page does, until the redirect to the patient page.
func click(ctx context.Context, hc *http.Client, base, token, clinikoID string) error {
	path := "/cliniko_patient_import?patient_id=" + clinikoID
	for i := 0; i < 300; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		req.AddCookie(&http.Cookie{Name: "pmsbridge_session", Value: token})
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusSeeOther:
			if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "/patients/") {
				return nil
			}
			return fmt.Errorf("click %s: redirect to %s", clinikoID, resp.Header.Get("Location"))
		case http.StatusAccepted: // the waiting page: it polls, then moves on
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			path = "/cliniko_patient_import?check=1&patient_id=" + clinikoID
		default:
			return fmt.Errorf("click %s: status %d", clinikoID, resp.StatusCode)
		}
	}
	return fmt.Errorf("click %s: never settled", clinikoID)
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))
