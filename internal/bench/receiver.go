package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/internal/loadgen"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/jobs"
)

// receiverClients is the concurrency of the receiver scenario (issue 4).
const receiverClients = 16

// receiverPatients is how many linked patients each client's practitioner
// has; the clients click them in turn.
const receiverPatients = 20

// ReceiverRoundTrips is the number of Redis round trips that the
// linked-patient path of GET /cliniko_patient_import waits for, read from
// the code (bridge/session.go, bridge/import.go, store/), for a practitioner
// clicking their own patient:
//
//  1. session: EVALSHA of getSessionScript (store.GetSession)
//  2. practitioner and Cliniko user: one pipeline of GET pmsb:prac:<id> and
//     HGET pmsb:prac:<id>:cliniko user (store.PractitionerWithCliniko)
//  3. link: HGET pmsb:links:<sub>:<shard> <cliniko id> (store.FindLink)
//  4. patient: GET pmsb:pat:<id> (store.GetPatient)
//
// The owner needs no access check (a colleague's click adds one pipeline,
// store.CanOpen). The refresh debounce (SET NX pmsb:debounce:refresh:<id>,
// jobs.Client.EnqueueRefresh) runs in a goroutine after the redirect is
// decided; the baseline does the same.
const ReceiverRoundTrips = 4

// receiver measures scenario 1: the linked-patient path against a minimal
// handler with the same Redis round trips.
func (r *runner) receiver(ctx context.Context) error {
	// The budget is raised only so that the warm-up's refresh jobs finish
	// quickly; no Cliniko call happens during the runs.
	sb := sandbox.New(sandbox.WithRateLimit(0))
	defer sb.Close()
	e, err := r.newApp(ctx, appSpec{mode: app.ModeRun, sandbox: sb, rpm: clickRPM})
	if err != nil {
		return err
	}
	defer e.stop()
	if err := e.start(); err != nil {
		return err
	}
	c, err := rig.SeedClinic(ctx, e.m.Store, sb, rig.ClinicSpec{Name: "Receiver Clinic", Practitioners: receiverClients, PatientsEach: receiverPatients, Link: true})
	if err != nil {
		return err
	}
	tokens, err := seedSessions(ctx, e.m.Store, c)
	if err != nil {
		return err
	}
	hc := loadgen.NewHTTPClient(receiverClients)
	// Warm up: every patient clicked once, which also takes each patient's
	// refresh debounce (the refresh jobs run now, not during the runs).
	for i, p := range c.Practitioners {
		for _, cid := range p.ClinikoPatients {
			if err := linkedClick(ctx, hc, e.url, tokens[i], cid); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	if err := queueIdle(ctx, e.m.Jobs.Inspector(), jobs.QueueImport, 60*time.Second); err != nil {
		return err
	}

	base, stopBase, err := startBaseline(e.redisURL, c)
	if err != nil {
		return err
	}
	defer stopBase()

	appOp := func(ctx context.Context, client, i int) error {
		p := c.Practitioners[client]
		return linkedClick(ctx, hc, e.url, tokens[client], p.ClinikoPatients[i%len(p.ClinikoPatients)])
	}
	baseOp := func(ctx context.Context, client, i int) error {
		p := c.Practitioners[client]
		return linkedClick(ctx, hc, base, tokens[client], p.ClinikoPatients[i%len(p.ClinikoPatients)])
	}
	lo := loadgen.Options{Clients: receiverClients, Duration: r.o.Duration, MaxOps: 200000}
	var res Pair
	for run := 0; run < r.o.Runs; run++ {
		a, err := loadgen.Run(ctx, lo, appOp)
		if err != nil {
			return err
		}
		b, err := loadgen.Run(ctx, lo, baseOp)
		if err != nil {
			return err
		}
		if a.Errors > 0 || b.Errors > 0 {
			return fmt.Errorf("errors in run %d: app %d (%v), baseline %d (%v)", run, a.Errors, a.FirstErr, b.Errors, b.FirstErr)
		}
		res.App = append(res.App, a)
		res.Base = append(res.Base, b)
		r.logf("  run %d: app %.0f req/s p50 %s p99 %s; baseline %.0f req/s p50 %s p99 %s", run+1,
			a.Throughput(), loadgen.Ms(a.Percentile(50)), loadgen.Ms(a.Percentile(99)),
			b.Throughput(), loadgen.Ms(b.Percentile(50)), loadgen.Ms(b.Percentile(99)))
	}
	r.rep.Receiver = &res
	return nil
}

// linkedClick is one click on a linked patient: it must redirect to the
// patient page.
func linkedClick(ctx context.Context, hc *http.Client, base, token, clinikoID string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/cliniko_patient_import?patient_id="+clinikoID, nil)
	if err != nil {
		return err
	}
	req.AddCookie(&http.Cookie{Name: "pmsbridge_session", Value: token})
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/patients/") {
		return fmt.Errorf("click %s: status %d to %q", clinikoID, resp.StatusCode, resp.Header.Get("Location"))
	}
	return nil
}

// startBaseline starts the minimal handler: it reads the session cookie and
// makes ReceiverRoundTrips plain Redis round trips on the app's own keys
// (no decoding, no decryption, no templates, no middleware), then
// redirects. It is the floor the receiver is compared against.
func startBaseline(redisURL string, c *rig.Clinic) (string, func(), error) {
	ru, err := config.ParseRedisURL(redisURL)
	if err != nil {
		return "", nil, err
	}
	rdb := ru.Client() // the same client options as the app's
	subOf := map[string]string{}
	for _, p := range c.Practitioners {
		subOf[p.ID] = p.SubscriptionID
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ck, err := r.Cookie("pmsbridge_session")
		if err != nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		cid := r.URL.Query().Get("patient_id")
		sum := sha256.Sum256([]byte(ck.Value))
		// 1. session
		v, err := rdb.HMGet(ctx, "pmsb:sess:"+hex.EncodeToString(sum[:]), "pid", "created", "last", "abs", "ip", "ua").Result()
		if err != nil || len(v) == 0 || v[0] == nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		pid, _ := v[0].(string)
		sub := subOf[pid]
		// 2. practitioner and Cliniko user in one pipeline
		pipe := rdb.Pipeline()
		pipe.Get(ctx, "pmsb:prac:"+pid)
		pipe.HGet(ctx, "pmsb:prac:"+pid+":cliniko", "user")
		if _, err := pipe.Exec(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// 3. link
		patID, err := rdb.HGet(ctx, "pmsb:links:"+sub+":au1", cid).Result()
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		// 4. patient
		if err := rdb.Get(ctx, "pmsb:pat:"+patID).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The refresh debounce, in the background as the app does it.
		go func() {
			_ = rdb.SetNX(context.Background(), "pmsb:debounce:refresh:"+patID, 1, 5*time.Minute).Err()
		}()
		http.Redirect(w, r, "/patients/"+patID, http.StatusSeeOther)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rdb.Close()
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close(); rdb.Close() }, nil
}
