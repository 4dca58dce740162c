package resilience_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// binary is the pmsbridge binary built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pmsbridge-resilience-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = rig.Build(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testRPM is the Cliniko budget of these tests, in the client and in the
// sandbox: high enough that the limiter's spacing does not stretch them
// (the benchmark measures the limiter).
const testRPM = 6000

// bundle is one test's world: its own redis-server (AOF on), sandbox,
// seeded clinic and pmsbridge processes.
type bundle struct {
	t        *testing.T
	redis    *redistest.Server
	sb       *sandbox.Sandbox
	key      string
	redisURL string
	port     int
	st       *store.Store
	pr       rig.Practitioner
}

// version is a programme version sent by a webhook.
type version struct {
	id        string
	v         int
	clinikoID string // the patient's id in the sandbox
}

func setup(t *testing.T, patients int) *bundle {
	t.Helper()
	t.Parallel()
	b := &bundle{t: t, redis: redistest.Start(t, true), sb: sandbox.New(sandbox.WithRateLimit(testRPM)), key: rig.NewEncryptionKey()}
	t.Cleanup(b.sb.Close)
	b.redisURL = b.redis.URL(0)
	var err error
	if b.port, err = rig.FreePort(); err != nil {
		t.Fatal(err)
	}
	st, closeStore, err := rig.OpenStore(b.redisURL, b.key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeStore)
	b.st = st
	c, err := rig.SeedClinic(context.Background(), st, b.sb, rig.ClinicSpec{Name: "Resilience Clinic", Practitioners: 1, PatientsEach: patients, Link: true})
	if err != nil {
		t.Fatal(err)
	}
	b.pr = c.Practitioners[0]
	return b
}

// start starts a pmsbridge process (run, serve or work) on the bundle's
// Redis, sandbox and HTTP port; it is killed when the test ends if still up.
func (b *bundle) start(mode string) *rig.Process {
	b.t.Helper()
	p, err := rig.Start(context.Background(), rig.ProcessConfig{Binary: binary, Mode: mode, RedisURL: b.redisURL,
		ClinikoURL: b.sb.BaseURL(), EncryptionKey: b.key, RequestsPerMinute: testRPM, Port: b.port})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		if !p.Exited() {
			p.Kill()
		}
		if b.t.Failed() {
			b.t.Logf("pmsbridge %s logs (tail):\n%s", mode, tail(p.Logs(), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// assign sends a signed programme webhook for patient i (version v of
// programme "prg_<name>_<i>") to the process at url and wants 202.
func (b *bundle) assign(url, name string, i, v int) version {
	b.t.Helper()
	id := fmt.Sprintf("prg_%s_%d", name, i)
	body := rig.ProgrammeEvent(fmt.Sprintf("evt_%s_%d_v%d", name, i, v), id, v, b.pr.Patients[i], b.pr.ID, 8)
	status, err := rig.PostWebhook(context.Background(), http.DefaultClient, url, body)
	if err != nil || status != http.StatusAccepted {
		b.t.Fatalf("webhook %s v%d: status %d, err %v", id, v, status, err)
	}
	return version{id: id, v: v, clinikoID: b.pr.ClinikoPatients[i]}
}

// waitUploaded polls until every version's PDF state is uploaded.
func (b *bundle) waitUploaded(vs []version, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var pending []string
		for _, v := range vs {
			st, err := b.st.PDFStateOf(context.Background(), v.id, v.v)
			if err != nil || st.State != pmsbridge.PDFUploaded {
				pending = append(pending, fmt.Sprintf("%s v%d (%s %s)", v.id, v.v, st.State, st.Cause))
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("after %s, %d of %d versions are not uploaded: %s", timeout, len(pending), len(vs), strings.Join(pending, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertExactlyOnce checks the sandbox: one attachment per version (found
// by the marker in its description), and it is the one recorded.
func (b *bundle) assertExactlyOnce(vs []version) {
	b.t.Helper()
	for _, v := range vs {
		marker := jobs.AttachmentMarker(v.id, v.v)
		var ids []string
		for _, a := range b.sb.Attachments(v.clinikoID) {
			if strings.Contains(a.Description, marker) {
				ids = append(ids, a.ID)
			}
		}
		if len(ids) != 1 {
			b.t.Errorf("%s v%d: %d attachments in Cliniko, want exactly 1 (%v)", v.id, v.v, len(ids), ids)
			continue
		}
		st, err := b.st.PDFStateOf(context.Background(), v.id, v.v)
		if err != nil || st.AttachmentID != ids[0] {
			b.t.Errorf("%s v%d: recorded attachment %q (err %v), Cliniko has %q", v.id, v.v, st.AttachmentID, err, ids[0])
		}
	}
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readyz(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestKilledDuringUpload kills pmsbridge with SIGKILL while uploads are
// half done (every Cliniko call takes 1.5 s, and the kill comes once the
// first "create attachment" call has reached Cliniko), restarts it, and
// wants exactly one attachment per programme version.
//
// asynq hands a dead worker's task back only when its lease (30 s, renewed
// while the worker lives) has run out and its recoverer (every minute, and
// at start) sees it 30 s past that: 60–65 s after the kill. That is asynq's
// fixed timing (asynq v0.26: rdb.LeaseDuration, recoverer.go), not a task
// Timeout, so this test takes over a minute; the upload lock a dead worker
// leaves behind lapses sooner (jobs.workLockTTL, 40 s) and does not add
// to it.
func TestKilledDuringUpload(t *testing.T) {
	b := setup(t, 4)
	p := b.start("run")
	b.sb.SetLatency(1500 * time.Millisecond)
	var vs []version
	for i := 0; i < 4; i++ {
		vs = append(vs, b.assign(p.URL, "kill", i, 1))
	}
	eventually(t, 60*time.Second, "a create-attachment call", func() bool { return b.sb.RequestCount("create_attachment") >= 1 })
	p.Kill()
	before := 0
	for _, v := range vs {
		before += len(b.sb.Attachments(v.clinikoID))
	}
	t.Logf("killed with %d create calls received and %d attachments made", b.sb.RequestCount("create_attachment"), before)
	if before == len(vs) {
		t.Log("every upload finished before the kill; the test proves less than it should")
	}

	b.sb.SetLatency(0)
	b.start("run")
	b.waitUploaded(vs, 150*time.Second)
	b.assertExactlyOnce(vs)
}

// TestRedisRestartWithQueuedJobs queues uploads while no worker runs,
// restarts Redis (SIGKILL, AOF on), and wants /readyz to say 503 while Redis
// is down and 200 after, and every queued upload done once a worker starts.
func TestRedisRestartWithQueuedJobs(t *testing.T) {
	b := setup(t, 20)
	serve := b.start("serve")
	var vs []version
	for i := 0; i < 20; i++ {
		vs = append(vs, b.assign(serve.URL, "redis", i, 1))
	}
	// With appendfsync everysec, Redis may lose the last second of writes
	// when killed; production has the same window. Wait it out so the test
	// is about recovery, not about that documented window.
	time.Sleep(2 * time.Second)
	if got := readyz(serve.URL); got != http.StatusOK {
		t.Fatalf("/readyz before the restart: %d, want 200", got)
	}

	b.redis.Stop()
	eventually(t, 30*time.Second, "/readyz to answer 503 while Redis is down", func() bool { return readyz(serve.URL) == http.StatusServiceUnavailable })
	if serve.Exited() {
		t.Fatal("pmsbridge serve exited while Redis was down")
	}
	b.redis.Restart(t)
	eventually(t, 60*time.Second, "/readyz to answer 200 after Redis came back", func() bool { return readyz(serve.URL) == http.StatusOK })

	// The process works again: a new webhook is accepted and queued.
	vs = append(vs, b.assign(serve.URL, "redis", 0, 2))
	b.start("work")
	b.waitUploaded(vs, 90*time.Second)
	b.assertExactlyOnce(vs)
}

// TestClinikoFlaky makes half of all Cliniko API calls answer 503 for 20 s
// while 20 uploads run (issue 8 asks for a minute; 20 s keeps CI short and
// still spans several retries of every upload), then lets Cliniko recover:
// everything completes, with no duplicate attachments.
func TestClinikoFlaky(t *testing.T) {
	b := setup(t, 20)
	p := b.start("run")
	b.sb.SetFailureRate(0.5, http.StatusServiceUnavailable)
	var vs []version
	for i := 0; i < 20; i++ {
		vs = append(vs, b.assign(p.URL, "flaky", i, 1))
	}
	time.Sleep(20 * time.Second)
	b.sb.SetFailureRate(0, 0)
	t.Logf("during the outage: %d create calls, %d attachments", b.sb.RequestCount("create_attachment"), len(vs))
	// Retries back off exponentially (up to about 30 s by the 5th attempt).
	b.waitUploaded(vs, 120*time.Second)
	b.assertExactlyOnce(vs)
	for _, v := range vs {
		st, _ := b.st.PDFStateOf(context.Background(), v.id, v.v)
		if st.State != pmsbridge.PDFUploaded {
			t.Errorf("%s: state %s", v.id, st.State)
		}
	}
}

// TestSIGTERMDuringBurst sends SIGTERM while 30 uploads are under way (each
// Cliniko call takes 1 s, so some uploads outlast the 8 s shutdown grace and
// go back to the queue): the process exits 0, and after a restart every
// programme version is uploaded exactly once — none lost, none twice.
func TestSIGTERMDuringBurst(t *testing.T) {
	b := setup(t, 30)
	p := b.start("run")
	b.sb.SetLatency(time.Second)
	var vs []version
	for i := 0; i < 30; i++ {
		vs = append(vs, b.assign(p.URL, "term", i, 1))
	}
	eventually(t, 60*time.Second, "some uploads to reach create-attachment", func() bool { return b.sb.RequestCount("create_attachment") >= 3 })
	// A generous bound: shutdown waits up to 8 s for running jobs and 10 s
	// for HTTP requests.
	if code := p.Terminate(45 * time.Second); code != 0 {
		t.Fatalf("pmsbridge run exited with %d after SIGTERM, want 0", code)
	}
	done := 0
	for _, v := range vs {
		if st, err := b.st.PDFStateOf(context.Background(), v.id, v.v); err == nil && st.State == pmsbridge.PDFUploaded {
			done++
		}
	}
	t.Logf("at exit: %d of %d uploaded", done, len(vs))

	b.sb.SetLatency(0)
	b.start("run")
	b.waitUploaded(vs, 120*time.Second)
	b.assertExactlyOnce(vs)
}
