package resilience_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/internal/rig"
)

// chaosScale is the load of a failover test. make chaos runs the full
// scale (PMSBRIDGE_CHAOS=full); ./scripts/test a shorter one that still
// spans the failover.
type chaosScale struct {
	practitioners int           // each clicks and has programmes assigned
	assignments   int           // programme versions sent by webhook, in all
	newPatients   int           // per practitioner: clicks that import
	pace          time.Duration // between two webhooks of one sender
}

func scale() chaosScale {
	if os.Getenv("PMSBRIDGE_CHAOS") == "full" {
		return chaosScale{practitioners: 4, assignments: 100, newPatients: 6, pace: 200 * time.Millisecond}
	}
	return chaosScale{practitioners: 3, assignments: 30, newPatients: 3, pace: 300 * time.Millisecond}
}

// TestFailoverUnderLoad: SENTINEL FAILOVER while practitioners click and
// the platform assigns programmes, on a primary, a replica and three
// sentinels, with `pmsbridge serve` ×2 and `pmsbridge work` ×2 on the
// redis-sentinel:// URL.
func TestFailoverUnderLoad(t *testing.T) {
	runFailover(t, "requested failover", func(ctx context.Context, s *redistest.Sentinel) (redistest.Promotion, error) {
		return s.Failover(ctx)
	})
}

// TestPrimaryKilledUnderLoad: the same with SIGKILL of the primary; the
// killed node comes back as a replica once a new primary is promoted, as a
// supervisor (restart: unless-stopped) would bring it back.
func TestPrimaryKilledUnderLoad(t *testing.T) {
	runFailover(t, "primary killed", func(ctx context.Context, s *redistest.Sentinel) (redistest.Promotion, error) {
		killed, p, err := s.KillPrimary(ctx)
		if err != nil {
			return p, err
		}
		return p, s.Rejoin(ctx, killed)
	})
}

// clickRecord is one click, answered (303 to the patient) after attempts.
type clickRecord struct {
	start, end time.Time
	attempts   int
}

// failoverRun is what one run saw.
type failoverRun struct {
	mu          sync.Mutex
	clicks      []clickRecord
	failedTries int // click attempts not answered with the patient (retried)
	unanswered  int // clicks never answered
	hookRetries int // webhook deliveries answered "try again" (redelivered)
	readyDown   time.Duration
}

func runFailover(t *testing.T, name string, breakRedis func(context.Context, *redistest.Sentinel) (redistest.Promotion, error)) {
	t.Parallel()
	sc := scale()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topo := redistest.StartSentinel(t, redistest.SentinelOptions{})
	b := &bundle{t: t, sb: sandbox.New(sandbox.WithRateLimit(testRPM)), key: rig.NewEncryptionKey(), redisURL: topo.URL(0)}
	t.Cleanup(b.sb.Close)
	st, closeStore, err := rig.OpenStore(b.redisURL, b.key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeStore)
	b.st = st
	each := sc.assignments / sc.practitioners
	clinic, err := rig.SeedClinic(ctx, st, b.sb, rig.ClinicSpec{Name: "Failover Clinic", Practitioners: sc.practitioners, PatientsEach: each, Link: true})
	if err != nil {
		t.Fatal(err)
	}
	// Patients in Cliniko only: clicks on them import.
	newPatients := make([][]string, sc.practitioners)
	for i := range newPatients {
		for j := 0; j < sc.newPatients; j++ {
			dob := "1980-01-02"
			p := clinic.Account.AddPatient(sandbox.Patient{FirstName: fmt.Sprintf("New%d", j), LastName: fmt.Sprintf("Of%d", i), DateOfBirth: &dob})
			newPatients[i] = append(newPatients[i], p.ID)
		}
	}

	// PMSBRIDGE_CHAOS_ACK=-1 measures what the wait for a replica buys:
	// the processes acknowledge assignments without it, and the run reports
	// how many acknowledged versions the failover lost instead of failing.
	measureLoss := os.Getenv("PMSBRIDGE_CHAOS_ACK") != ""
	extra := map[string]string{}
	if measureLoss {
		extra["PMSBRIDGE_REDIS_ACK_REPLICAS"] = os.Getenv("PMSBRIDGE_CHAOS_ACK")
	}
	var procs []*rig.Process
	var serves []string
	for _, mode := range []string{"serve", "serve", "work", "work"} {
		port, err := rig.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		p, err := rig.Start(ctx, rig.ProcessConfig{Binary: binary, Mode: mode, RedisURL: b.redisURL,
			ClinikoURL: b.sb.BaseURL(), EncryptionKey: b.key, RequestsPerMinute: testRPM, Port: port, Extra: extra})
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
		if mode == "serve" {
			serves = append(serves, p.URL)
		}
		t.Cleanup(func() {
			if !p.Exited() {
				p.Kill()
			}
			if t.Failed() {
				t.Logf("pmsbridge %s (%s) logs (tail):\n%s", mode, p.URL, tail(p.Logs(), 4000))
			}
			if dir := os.Getenv("PMSBRIDGE_CHAOS_LOGS"); dir != "" {
				_ = os.WriteFile(fmt.Sprintf("%s/%s-%s-%d.log", dir, strings.ReplaceAll(name, " ", "-"), mode, p.PID()), []byte(p.Logs()), 0o644)
			}
		})
	}
	clients := make([]*http.Client, sc.practitioners)
	for i, pr := range clinic.Practitioners {
		clients[i] = login(t, serves[i%len(serves)], pr.Email)
	}

	run := &failoverRun{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var load sync.WaitGroup
	// /readyz of the first serve, every 100 ms.
	load.Go(func() {
		for loadCtx.Err() == nil {
			start := time.Now()
			ok := readyz(serves[0]) == http.StatusOK
			sleep(loadCtx, 100*time.Millisecond)
			if !ok {
				run.mu.Lock()
				run.readyDown += time.Since(start)
				run.mu.Unlock()
			}
		}
	})
	// Clicks: each practitioner opens their linked patients in turn, and
	// now and then a patient who is new to pmsbridge (an import).
	for i, pr := range clinic.Practitioners {
		load.Go(func() {
			for n := 0; loadCtx.Err() == nil; n++ {
				cid := pr.ClinikoPatients[n%len(pr.ClinikoPatients)]
				if n%5 == 4 && n/5 < len(newPatients[i]) {
					cid = newPatients[i][n/5]
				}
				run.click(ctx, clients[i], serves[n%len(serves)], cid)
				sleep(loadCtx, 50*time.Millisecond)
			}
		})
	}
	// Assignments: one sender per practitioner, each delivery redelivered
	// until it is acknowledged (202, or 200 for a duplicate), as the
	// platform does.
	var hooks sync.WaitGroup
	var mu sync.Mutex
	var acked []version
	var ackTimes []time.Time
	for i, pr := range clinic.Practitioners {
		hooks.Go(func() {
			for j := 0; j < each; j++ {
				id := fmt.Sprintf("prg_fo_%d_%d", i, j)
				body := rig.ProgrammeEvent(fmt.Sprintf("evt_fo_%d_%d", i, j), id, 1, pr.Patients[j], pr.ID, 6)
				for try := 0; ; try++ {
					status, err := rig.PostWebhook(ctx, &http.Client{Timeout: 20 * time.Second}, serves[(i+j+try)%len(serves)], body)
					if err == nil && (status == http.StatusAccepted || status == http.StatusOK) {
						break
					}
					if ctx.Err() != nil {
						return
					}
					run.mu.Lock()
					run.hookRetries++
					run.mu.Unlock()
					sleep(ctx, 200*time.Millisecond)
				}
				mu.Lock()
				acked = append(acked, version{id: id, v: 1, clinikoID: pr.ClinikoPatients[j]})
				ackTimes = append(ackTimes, time.Now())
				mu.Unlock()
				sleep(ctx, sc.pace)
			}
		})
	}

	// Break Redis once a third of the programmes are acknowledged.
	eventually(t, time.Minute, "a third of the assignments", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= sc.assignments/3
	})
	t0 := time.Now()
	prom, err := breakRedis(ctx, topo)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	promoted := t0.Add(prom.Took)
	t.Logf("%s: %s promoted in place of %s after %s (the helper returned after %s)", name, prom.New, prom.Old, prom.Took.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	hooks.Wait()
	// Clicks go on a little after the last acknowledgement.
	sleep(ctx, 2*time.Second)
	stopLoad()
	load.Wait()

	// Every acknowledged version is uploaded, exactly once.
	if len(acked) != sc.assignments {
		t.Fatalf("%d of %d assignments acknowledged", len(acked), sc.assignments)
	}
	if measureLoss {
		sleep(ctx, 30*time.Second)
		lost := 0
		for _, v := range acked {
			if st, err := b.st.PDFStateOf(ctx, v.id, v.v); err != nil || st.State != pmsbridge.PDFUploaded {
				lost++
			}
		}
		t.Logf("FIGURES %s with redis.ack_replicas=%s: %d of %d acknowledged versions not uploaded 30 s after the last acknowledgement (lost with the old primary)",
			name, os.Getenv("PMSBRIDGE_CHAOS_ACK"), lost, len(acked))
		return
	}
	b.waitUploaded(acked, 3*time.Minute)
	lastUpload := time.Since(t0)
	b.assertExactlyOnce(acked)
	for _, p := range procs {
		if p.Exited() {
			t.Errorf("a pmsbridge process (%s) exited", p.URL)
		}
	}

	// Figures.
	slices.SortFunc(run.clicks, func(a, b clickRecord) int { return a.end.Compare(b.end) })
	var firstAfter, firstAfterPromotion time.Duration = -1, -1
	var gap time.Duration
	for i, c := range run.clicks {
		if firstAfter < 0 && !c.start.Before(t0) {
			firstAfter = c.end.Sub(t0)
		}
		if firstAfterPromotion < 0 && !c.start.Before(promoted) {
			firstAfterPromotion = c.end.Sub(t0)
		}
		if i > 0 && c.end.After(t0.Add(-time.Second)) {
			gap = max(gap, c.end.Sub(run.clicks[i-1].end))
		}
	}
	slices.SortFunc(ackTimes, time.Time.Compare)
	var hookGap time.Duration
	for i := 1; i < len(ackTimes); i++ {
		hookGap = max(hookGap, ackTimes[i].Sub(ackTimes[i-1]))
	}
	retried := 0
	for _, c := range run.clicks {
		if c.attempts > 1 {
			retried++
		}
	}
	t.Logf("FIGURES %s: promotion %s; first click answered %s after the failover began (%s for a click begun after the promotion); longest gap between answered clicks %s; last upload recorded %s after it; %d clicks answered (%d after a retry, %d attempts retried); %d webhook deliveries answered \"try again\" and redelivered, longest gap between acknowledged assignments %s; /readyz not 200 for about %s",
		name, prom.Took.Round(10*time.Millisecond), firstAfter.Round(10*time.Millisecond), firstAfterPromotion.Round(10*time.Millisecond),
		gap.Round(10*time.Millisecond), lastUpload.Round(100*time.Millisecond), len(run.clicks), retried, run.failedTries, run.hookRetries, hookGap.Round(10*time.Millisecond), run.readyDown.Round(100*time.Millisecond))
	if firstAfterPromotion < 0 {
		t.Error("no click was answered after the promotion")
	}
	if run.unanswered > 0 {
		t.Errorf("%d clicks were never answered (within a minute of retries)", run.unanswered)
	}
}

// click opens a Cliniko patient until the receiver answers with the
// patient (303 to /patients/…), clicking again after anything else (an
// error page while Redis fails over, the waiting page of an import), as a
// practitioner would.
func (r *failoverRun) click(ctx context.Context, c *http.Client, base, clinikoID string) {
	start := time.Now()
	for attempt := 1; ctx.Err() == nil; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/cliniko_patient_import?patient_id="+clinikoID, nil)
		resp, err := c.Do(req)
		ok := false
		if err == nil {
			ok = resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/patients/")
			resp.Body.Close()
		}
		if ok {
			r.mu.Lock()
			r.clicks = append(r.clicks, clickRecord{start: start, end: time.Now(), attempts: attempt})
			r.mu.Unlock()
			return
		}
		r.mu.Lock()
		r.failedTries++
		r.mu.Unlock()
		if time.Since(start) > time.Minute {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.mu.Lock()
	r.unanswered++
	r.mu.Unlock()
}

// login logs a practitioner in at base and returns a client with the
// session that does not follow redirects.
func login(t *testing.T, base, email string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/login", url.Values{"email": {email}, "password": {rig.Password}, "next": {"/patients"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login %s: status %d", email, resp.StatusCode)
	}
	return c
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// BenchmarkWebhookAck measures what redis.ack_replicas costs an accepted
// webhook: one `pmsbridge serve` on a Sentinel topology (primary, replica,
// three sentinels on loopback) answers programme webhooks one after
// another, without the wait for the replica (-1) and with it (automatic:
// 1 with redis-sentinel://). Each operation is one accepted version.
//
//	go test ./internal/resilience -run '^$' -bench WebhookAck -benchtime 500x -count 5
func BenchmarkWebhookAck(b *testing.B) {
	for _, bc := range []struct{ name, ack string }{{"no_wait", "-1"}, {"wait_1_replica", "0"}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			topo := redistest.StartSentinel(b, redistest.SentinelOptions{})
			sb := sandbox.New(sandbox.WithRateLimit(testRPM))
			b.Cleanup(sb.Close)
			key := rig.NewEncryptionKey()
			st, closeStore, err := rig.OpenStore(topo.URL(0), key)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(closeStore)
			c, err := rig.SeedClinic(ctx, st, sb, rig.ClinicSpec{Name: "Bench Clinic", Practitioners: 1, PatientsEach: 1, Link: true})
			if err != nil {
				b.Fatal(err)
			}
			p, err := rig.Start(ctx, rig.ProcessConfig{Binary: binary, Mode: "serve", RedisURL: topo.URL(0), ClinikoURL: sb.BaseURL(),
				EncryptionKey: key, LogLevel: "warn", Extra: map[string]string{"PMSBRIDGE_REDIS_ACK_REPLICAS": bc.ack}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Kill)
			pr := c.Practitioners[0]
			hc := &http.Client{Timeout: 10 * time.Second}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				body := rig.ProgrammeEvent(fmt.Sprintf("evt_bench_%s_%d", bc.name, i), "prg_bench", i+1, pr.Patients[0], pr.ID, 6)
				if status, err := rig.PostWebhook(ctx, hc, p.URL, body); err != nil || status != http.StatusAccepted {
					b.Fatalf("webhook %d: %d, %v", i, status, err)
				}
			}
		})
	}
}
