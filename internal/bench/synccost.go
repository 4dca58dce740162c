package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/jobs"
)

// Sync cost scenario (issue 16): Cliniko requests of one sync period for a
// clinic of 20 practitioners, each with a key of the clinic's Cliniko
// account, measured on the code before the per-account sync (built from
// SyncBeforeRev) and on this tree.
const (
	syncPractitioners = 20
	syncPatientsEach  = 25
	syncChanged       = 20 // patients changed in Cliniko in a steady period
	// DefaultSyncBeforeRev is the last commit whose sync ran once per
	// practitioner with a key (TypeSyncPractitioner, a watermark each).
	DefaultSyncBeforeRev = "cb32fc3"
)

// SyncCostRun is one measured sync period.
type SyncCostRun struct {
	Code     string // "before" or "after"
	Period   string // "first" (no watermark) or "steady"
	Tasks    int    // sync tasks run in the period, the tick included
	Requests map[string]int
	Elapsed  time.Duration // from the tick's enqueue until the sync queue was idle
}

// Calls is the period's Cliniko API requests.
func (s SyncCostRun) Calls() int {
	n := 0
	for _, v := range s.Requests {
		n += v
	}
	return n
}

// SyncCostResult is the sync cost scenario.
type SyncCostResult struct {
	BeforeRev string
	Runs      []SyncCostRun
}

func (s *SyncCostResult) find(code, period string) (SyncCostRun, bool) {
	for _, r := range s.Runs {
		if r.Code == code && r.Period == period {
			return r, true
		}
	}
	return SyncCostRun{}, false
}

// binaries builds, once per benchmark run, the pmsbridge binary of this
// tree and of other revisions.
type binaries struct {
	mu    sync.Mutex
	built map[string]string // "" is this tree
}

// binary returns the path of the pmsbridge binary of rev ("" for this
// tree), building it the first time.
func (r *runner) binary(ctx context.Context, rev string) (string, error) {
	r.bins.mu.Lock()
	defer r.bins.mu.Unlock()
	if p, ok := r.bins.built[rev]; ok {
		return p, nil
	}
	if r.bins.built == nil {
		r.bins.built = map[string]string{}
	}
	var bin string
	var err error
	if rev == "" {
		bin, err = rig.Build(ctx, r.dir)
	} else {
		bin, err = buildRev(ctx, r.dir, rev)
	}
	if err != nil {
		return "", err
	}
	r.bins.built[rev] = bin
	return bin, nil
}

// buildRev builds cmd/pmsbridge as it was at a git revision of this
// repository (git archive into dir, then go build there).
func buildRev(ctx context.Context, dir, rev string) (string, error) {
	src := filepath.Join(dir, "src-"+rev)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.CommandContext(ctx, "sh", "-c", `git archive --format=tar "$1" | tar -x -C "$2"`, "sh", rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s (run the benchmark from the repository): %w\n%s", rev, err, out)
	}
	bin := filepath.Join(dir, "pmsbridge-"+rev)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pmsbridge")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build pmsbridge at %s: %w\n%s", rev, err, out)
	}
	return bin, nil
}

// syncCost measures one sync period's Cliniko requests, before and after,
// for the first sync of the clinic and for a steady period.
func (r *runner) syncCost(ctx context.Context) error {
	res := &SyncCostResult{BeforeRev: r.o.SyncBeforeRev}
	codes := []string{"after"}
	if res.BeforeRev != "" {
		codes = []string{"before", "after"}
	}
	for _, code := range codes {
		rev := ""
		if code == "before" {
			rev = res.BeforeRev
		}
		bin, err := r.binary(ctx, rev)
		if err != nil {
			return err
		}
		for _, period := range []string{"first", "steady"} {
			run, err := r.syncPeriod(ctx, bin, code, period)
			if err != nil {
				return fmt.Errorf("%s, %s period: %w", code, period, err)
			}
			res.Runs = append(res.Runs, run)
			r.logf("  %s, %s period: %d Cliniko requests %v, %d sync tasks, %s", code, period, run.Calls(), run.Requests, run.Tasks, run.Elapsed.Round(time.Millisecond))
		}
	}
	r.rep.SyncCost = res
	return nil
}

// syncPeriod seeds the clinic on a fresh database and sandbox, starts one
// `pmsbridge work` process of bin, queues a sync tick as its scheduler
// would, and counts the sandbox's requests until the sync queue is idle.
func (r *runner) syncPeriod(ctx context.Context, bin, code, period string) (SyncCostRun, error) {
	run := SyncCostRun{Code: code, Period: period}
	// The sandbox's clock can be moved ahead, so that the patients changed
	// in a steady period are newer than the watermark.
	var mu sync.Mutex
	var ahead time.Duration
	sb := sandbox.New(sandbox.WithRateLimit(0), sandbox.WithClock(func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(ahead)
	}))
	defer sb.Close()
	key, redisURL := rig.NewEncryptionKey(), r.freshDB()
	st, closeStore, err := rig.OpenStore(redisURL, key)
	if err != nil {
		return run, err
	}
	defer closeStore()
	c, err := rig.SeedClinic(ctx, st, sb, rig.ClinicSpec{Name: "Sync Clinic", Practitioners: syncPractitioners, PatientsEach: syncPatientsEach, Link: true})
	if err != nil {
		return run, err
	}
	if period == "steady" {
		// Every patient was read before this period: the watermarks are
		// now; then some patients change in Cliniko.
		mark := time.Now()
		if code == "before" {
			for _, p := range c.Practitioners {
				// The old per-practitioner watermark (scope "<shard>-<id>").
				if err := st.SetSyncCursor(ctx, c.Subscription.ID, "au1-"+p.ID, mark); err != nil {
					return run, err
				}
			}
		} else if err := st.SetSyncCursor(ctx, c.Subscription.ID, "au1", mark); err != nil {
			return run, err
		}
		mu.Lock()
		ahead = time.Hour
		mu.Unlock()
		for i := 0; i < syncChanged; i++ {
			p := c.Practitioners[i%len(c.Practitioners)]
			sb.EditPatient(p.ClinikoPatients[i/len(c.Practitioners)], func(cp *sandbox.Patient) { cp.Email = fmt.Sprintf("changed%d@patients.example", i) })
		}
	}
	proc, err := rig.Start(ctx, rig.ProcessConfig{Binary: bin, Mode: "work", RedisURL: redisURL, ClinikoURL: sb.BaseURL(), EncryptionKey: key, RequestsPerMinute: clickRPM})
	if err != nil {
		return run, err
	}
	defer proc.Terminate(20 * time.Second)
	rdb, err := redisClient(redisURL)
	if err != nil {
		return run, err
	}
	defer rdb.Close()
	before := sb.Requests()
	t0 := time.Now()
	if _, err := asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, jobs.NewSyncTickTask(), jobs.TaskOptions(jobs.TypeSyncTick)...); err != nil {
		return run, err
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		qi, err := insp.GetQueueInfo(jobs.QueueSync)
		if err == nil {
			if qi.Archived+qi.Retry > 0 {
				return run, fmt.Errorf("sync tasks failed (%d archived, %d retrying)\n%s", qi.Archived, qi.Retry, proc.Logs())
			}
			if qi.Processed > 0 && qi.Pending+qi.Active+qi.Scheduled == 0 {
				run.Tasks, run.Elapsed = qi.Processed, time.Since(t0)
				break
			}
		}
		if time.Now().After(deadline) {
			return run, fmt.Errorf("the sync did not finish in 5 minutes\n%s", proc.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	run.Requests = map[string]int{}
	for op, n := range sb.Requests() {
		if d := n - before[op]; d > 0 {
			run.Requests[op] = d
		}
	}
	// What the sync did: every changed linked patient updated.
	if period == "steady" {
		for i := 0; i < syncChanged; i++ {
			p := c.Practitioners[i%len(c.Practitioners)]
			pat, err := st.GetPatient(ctx, p.Patients[i/len(c.Practitioners)])
			if err != nil {
				return run, err
			}
			if want := fmt.Sprintf("changed%d@patients.example", i); pat.Email != want {
				return run, fmt.Errorf("patient %s not synced: email %q, want %q", pat.ID, pat.Email, want)
			}
		}
	}
	if code := proc.Terminate(20 * time.Second); code != 0 {
		return run, fmt.Errorf("pmsbridge work exited %d after SIGTERM\n%s", code, proc.Logs())
	}
	return run, nil
}

// syncCostSummary adds the scenario's lines to the summary table.
func (s *SyncCostResult) summary(w func(string, ...any)) {
	for _, period := range []string{"steady", "first"} {
		after, ok := s.find("after", period)
		if !ok {
			continue
		}
		base := "—"
		if before, ok := s.find("before", period); ok {
			base = fmt.Sprintf("%d (one sync per practitioner, %s)", before.Calls(), s.BeforeRev)
		}
		w("| Cliniko requests per sync period, clinic of %d practitioners with keys, %s | %d | %s | one account's worth | |\n",
			syncPractitioners, periodText(period), after.Calls(), base)
	}
}

func periodText(period string) string {
	if period == "first" {
		return fmt.Sprintf("first sync (%d linked patients in the look-back)", syncPractitioners*syncPatientsEach)
	}
	return fmt.Sprintf("steady period (%d patients changed)", syncChanged)
}

// markdown writes the scenario's section.
func (s *SyncCostResult) markdown(w func(string, ...any), section int) {
	w("## %d. Cliniko requests per sync period: one sync per account\n\n", section)
	w("A clinic of %d practitioners, each with their own Cliniko user and key of the clinic's one Cliniko account\n", syncPractitioners)
	w("(au1), %d patients each, all %d linked (seeded through the store, `internal/rig`). For each measurement:\n", syncPatientsEach, syncPractitioners*syncPatientsEach)
	w("a fresh Redis database and sandbox, one `pmsbridge work` process (a real process, `PMSBRIDGE_*` variables),\n")
	w("one `sync:tick` task queued as its scheduler would queue it, and the sandbox's requests counted until the\n")
	w("sync queue is idle. *First sync*: no watermark, so the sync reads the 7-day look-back (every patient).\n")
	w("*Steady period*: the watermarks are set to the previous period's end and %d patients change in Cliniko; the\n", syncChanged)
	w("scenario checks that each of them was updated. *Before* is the binary built from `%s` (the last commit whose\n", s.BeforeRev)
	w("tick queued one `sync:practitioner` task per practitioner with a key, each with its own watermark); *after*\n")
	w("is this tree (one `sync:account` task per subscription + shard, one watermark, an administrator's key first).\n\n")
	w("| code | period | sync tasks run (tick included) | Cliniko requests | by operation | time to idle |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, x := range s.Runs {
		var ops []string
		for _, op := range slices.Sorted(maps.Keys(x.Requests)) {
			ops = append(ops, fmt.Sprintf("%s %d", op, x.Requests[op]))
		}
		w("| %s | %s | %d | %d | %s | %.2f s |\n", x.Code, periodText(x.Period), x.Tasks, x.Calls(), strings.Join(ops, ", "), x.Elapsed.Seconds())
	}
	w("\nThe cost of a period now grows with the number of Cliniko accounts (clinics), not with practitioners: the\n")
	w("requests are the pages of the account's changed patients (100 per page), read once.\n\n")
	w("Reproduce: `go run ./cmd/pmsbridge-bench -only synccost -sync-before %s -out /tmp/b.md`\n\n", s.BeforeRev)
}
