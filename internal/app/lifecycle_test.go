package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/redis/go-redis/v9"
)

func status(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReadinessFollowsRedis: /readyz is 503 while Redis is down and the
// process recovers by itself when Redis is back; /healthz stays 200.
func TestReadinessFollowsRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, true)
	e := apptest.Start(t, apptest.Options{RedisURL: srv.URL(0)})
	// pmsbridge_ready on /metrics says what /readyz says, for alert rules.
	ready := func() string { return metricValue(e.NewBrowser().Get("/metrics").Body, "pmsbridge_ready") }
	if got := status(t, e.URL+"/readyz"); got != http.StatusOK {
		t.Fatalf("readyz with Redis up: %d, want 200", got)
	}
	if got := ready(); got != "1" {
		t.Errorf("pmsbridge_ready with Redis up: %q, want 1", got)
	}
	srv.Stop()
	e.Eventually("readyz 503 with Redis down", func() bool { return status(t, e.URL+"/readyz") == http.StatusServiceUnavailable })
	if got := status(t, e.URL+"/healthz"); got != http.StatusOK {
		t.Errorf("healthz with Redis down: %d, want 200 (the process is up)", got)
	}
	if got := ready(); got != "0" {
		t.Errorf("pmsbridge_ready with Redis down: %q, want 0", got)
	}
	srv.Restart(t)
	e.Eventually("readyz 200 after Redis is back", func() bool { return status(t, e.URL+"/readyz") == http.StatusOK })
	e.Eventually("pmsbridge_ready 1 after Redis is back", func() bool { return ready() == "1" })
}

// TestShutdownRequeuesRunningTask: a graceful stop while an import is
// running hands the task back to its queue (not lost, retry budget intact),
// and the next process finishes it.
func TestShutdownRequeuesRunningTask(t *testing.T) {
	t.Parallel()
	redisURL := redistest.URL(t)
	sb := sandbox.NewDemo()
	t.Cleanup(sb.Close)
	e := apptest.Start(t, apptest.Options{RedisURL: redisURL, Sandbox: sb})
	clinic := e.SeedClinic("Shutdown Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	sb.SetLatency(8 * time.Second) // the import is mid-call when we stop
	r := b.Get("/cliniko_patient_import?patient_id=" + sandbox.DemoPatientID)
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("click with a slow Cliniko: %d, want 202 (the waiting page)", r.StatusCode)
	}
	opt, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	taskID := jobs.ImportTaskID(clinic.Subscription.ID, "au1", sandbox.DemoPatientID)
	e.Eventually("the import to be running", func() bool {
		info, err := insp.GetTaskInfo(jobs.QueueImport, taskID)
		return err == nil && info.State == asynq.TaskStateActive
	})
	e.Stop() // graceful: ShutdownTimeout 2s < the 8s Cliniko call
	info, err := insp.GetTaskInfo(jobs.QueueImport, taskID)
	if err != nil {
		t.Fatalf("task after shutdown: %v", err)
	}
	if info.State != asynq.TaskStatePending || info.Retried != 0 {
		t.Fatalf("task after shutdown: state %v retried %d, want pending with retried 0", info.State, info.Retried)
	}
	sb.SetLatency(0)
	secrets := e.Config.Secrets // the records are encrypted with e's key
	e2 := apptest.Start(t, apptest.Options{RedisURL: redisURL, Sandbox: sb, Configure: func(c *config.Config) { c.Secrets = secrets }})
	e2.Eventually("the requeued import to finish", func() bool {
		_, err := e2.Store.FindLink(context.Background(), clinic.Subscription.ID, "au1", sandbox.DemoPatientID)
		return err == nil
	})
}

// TestCleanShutdownLogsNoError: starting and stopping a process cleanly
// logs nothing at ERROR (log alerts fire on ERROR), in every mode.
func TestCleanShutdownLogsNoError(t *testing.T) {
	t.Parallel()
	for _, mode := range []app.Mode{app.ModeRun, app.ModeWork, app.ModeServe} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := apptest.Start(t, apptest.Options{Mode: mode})
			e.Eventually("the start to be logged", func() bool { return strings.Contains(e.Logs.String(), `"msg":"pmsbridge started"`) })
			e.Stop()
			logs := e.Logs.String()
			if !strings.Contains(logs, `"msg":"stopped"`) {
				t.Fatalf("no clean stop in the logs:\n%s", logs)
			}
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				var rec struct {
					Level string `json:"level"`
				}
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Errorf("log line is not JSON: %q", line)
					continue
				}
				if rec.Level == "ERROR" {
					t.Errorf("ERROR logged on a clean start and stop: %s", line)
				}
			}
		})
	}
}
