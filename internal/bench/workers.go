package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/jobs"
)

// Many workers, one budget (issue 16): work processes on one Redis upload
// programmes for one Cliniko user at Cliniko's real rate.
const (
	workersProcesses = 4
	workersUploads   = 120
)

// WorkersResult is the many-workers scenario.
type WorkersResult struct {
	Processes int
	Run       BurstRun
	// Busy is how many of the work processes were seen running an upload
	// (asynq's server list, sampled every 100 ms).
	Busy int
	// Exits are the exit codes of the processes after SIGTERM, serve first.
	Exits []int
}

// workers measures 120 programme uploads for one Cliniko user by four
// `pmsbridge work` processes (and a `pmsbridge serve` for the webhooks) at
// 200 requests per minute, the sandbox enforcing the same limit.
func (r *runner) workers(ctx context.Context) error {
	bin, err := r.binary(ctx, "")
	if err != nil {
		return err
	}
	res := &WorkersResult{Processes: workersProcesses}
	const rpm = sandbox.DefaultRateLimit
	b, err := r.burstOnce(ctx, rpm, workersUploads, func(sb *sandbox.Sandbox) (burstTarget, func(), error) {
		key, redisURL := rig.NewEncryptionKey(), r.freshDB()
		pc := rig.ProcessConfig{Binary: bin, RedisURL: redisURL, ClinikoURL: sb.BaseURL(), EncryptionKey: key, RequestsPerMinute: rpm}
		var procs []*rig.Process
		stopAll := func() {
			for _, p := range procs {
				res.Exits = append(res.Exits, p.Terminate(20*time.Second))
			}
		}
		pc.Mode = "serve"
		serve, err := rig.Start(ctx, pc)
		if err != nil {
			return burstTarget{}, nil, err
		}
		procs = append(procs, serve)
		pc.Mode = "work"
		for range workersProcesses {
			p, err := rig.Start(ctx, pc)
			if err != nil {
				stopAll()
				return burstTarget{}, nil, err
			}
			procs = append(procs, p)
		}
		st, closeStore, err := rig.OpenStore(redisURL, key)
		if err != nil {
			stopAll()
			return burstTarget{}, nil, err
		}
		rdb, err := redisClient(redisURL)
		if err != nil {
			stopAll()
			closeStore()
			return burstTarget{}, nil, err
		}
		watchCtx, stopWatch := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		busy := map[string]bool{}
		go func() {
			defer wg.Done()
			insp := asynq.NewInspectorFromRedisClient(rdb)
			for watchCtx.Err() == nil {
				if servers, err := insp.Servers(); err == nil {
					for _, s := range servers {
						for _, w := range s.ActiveWorkers {
							if w.TaskType == jobs.TypeUploadPDF {
								busy[fmt.Sprintf("%s/%d", s.Host, s.PID)] = true
							}
						}
					}
				}
				select {
				case <-watchCtx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		return burstTarget{url: serve.URL, store: st}, func() {
			stopWatch()
			wg.Wait()
			rdb.Close()
			res.Busy = len(busy)
			stopAll()
			closeStore()
		}, nil
	})
	if err != nil {
		return err
	}
	res.Run = b
	for i, code := range res.Exits {
		if code != 0 {
			return fmt.Errorf("process %d exited %d after SIGTERM", i, code)
		}
	}
	r.logf("  %d work processes (%d seen uploading): %s; %.2fx the minimum of %d uploads × %d calls", res.Processes, res.Busy, b, res.Ratio(), workersUploads, uploadCalls)
	r.rep.Workers = res
	return nil
}

// uploadCalls is an upload's calls on the Cliniko budget: list
// attachments, presigned post, create attachment.
const uploadCalls = 3

// Minimum is the least time the uploads can take: each upload's calls at
// the budget's rate, nothing repeated.
func (wk *WorkersResult) Minimum() time.Duration {
	return time.Duration(float64(workersUploads*uploadCalls) / float64(wk.Run.RPM) * float64(time.Minute))
}

// Ratio is elapsed over Minimum.
func (wk *WorkersResult) Ratio() float64 { return wk.Run.Elapsed.Seconds() / wk.Minimum().Seconds() }

// summary adds the scenario's line to the summary table.
func (wk *WorkersResult) summary(w func(string, ...any)) {
	x := wk.Run
	ok := wk.Ratio() <= 1.10 && x.RateLimited == 0 && x.Duplicates+x.Missing == 0
	w("| %d `work` processes, %d uploads for one Cliniko user at %d requests/min: elapsed / minimum | %.2fx (%.1f s, %d calls) | minimum = %d uploads × %d calls ÷ requests per minute (%.1f s) | ≤ 1.10x, 0 429s | %s; %d 429s, %d duplicate or missing |\n",
		wk.Processes, workersUploads, x.RPM, wk.Ratio(), x.Elapsed.Seconds(), x.Calls, workersUploads, uploadCalls, wk.Minimum().Seconds(), yes(ok), x.RateLimited, x.Duplicates+x.Missing)
}

// markdown writes the scenario's section.
func (wk *WorkersResult) markdown(w func(string, ...any), section int) {
	x := wk.Run
	w("## %d. Many workers, one budget: %d `work` processes, one Cliniko user\n\n", section, wk.Processes)
	w("Real processes of the binary built from this tree, on one Redis database: one `pmsbridge serve` (for the\n")
	w("webhooks) and %d `pmsbridge work`, all with `cliniko.requests_per_minute` %d; the sandbox enforces Cliniko's\n", wk.Processes, x.RPM)
	w("%d requests per minute per user in fixed windows and answers 429 beyond. One practitioner (one Cliniko user,\n", x.RPM)
	w("one key) with %d linked patients; %d signed `programme.assigned` webhooks (12 exercises each) are posted at\n", workersUploads, workersUploads)
	w("once, and the time runs until every version's PDF state is `uploaded`. Each upload is 3 calls on the budget\n")
	w("(list attachments, presigned post, create attachment; the storage upload is not on it), so the minimum is\n")
	w("%d × %d ÷ %d/min = %.0f s; every call repeated (a job that gave its worker back part-way and started\n", workersUploads, uploadCalls, x.RPM, wk.Minimum().Seconds())
	w("again) shows as budget calls above %d and storage uploads above %d. The processes share the one budget\n", workersUploads*uploadCalls, workersUploads)
	w("through Redis (`cliniko.Budget`), so it holds whatever the number of workers; a figure, not a timed test.\n\n")
	w("| work processes | seen uploading | elapsed | budget calls | minimum | elapsed / minimum | 429s | storage uploads | duplicates | missing | exit codes (serve, work…) |\n")
	w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	w("| %d | %d | %.2f s | %d | %.2f s | %.2fx | %d | %d | %d | %d | %v |\n\n", wk.Processes, wk.Busy, x.Elapsed.Seconds(), x.Calls,
		wk.Minimum().Seconds(), wk.Ratio(), x.RateLimited, x.Storage, x.Duplicates, x.Missing, wk.Exits)
	w("What it took to get there: the first run of this scenario (commit 4ef2976) took 438 s for the same 120\n")
	w("uploads, 4.06x the minimum, with 1417 budget calls and 318 storage uploads. Forty workers (4 processes × 10)\n")
	w("polled the one budget; a job whose second or third call did not win a slot within its 5 s gave its worker\n")
	w("back and later started again, repeating the calls it had made. Now a call reserves the next slot in order\n")
	w("and sleeps until it (no polling, no slot lost), and a job waits only for its first call's slot\n")
	w("(`cliniko.ForJob`): once a call went out, its later calls wait for theirs, so nothing is repeated.\n\n")
	w("Reproduce: `go run ./cmd/pmsbridge-bench -only workers -out /tmp/b.md`\n\n")
}
