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
	"github.com/physitrack/pmsbridge/flows"
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

// The linked-patient path of GET /cliniko_patient_import waits for one Redis
// round trip: the EVALSHA of the click script (store.ResolveClick), which
// reads the session (and slides it), the practitioner and the Cliniko user
// of their key, the link, the patient's owner and shares (for a colleague,
// the owner and the sharing groups too) and whether the patient's refresh
// debounce is taken. A click that finds it free queues a refresh in a
// goroutine after the redirect is decided (jobs.Client.EnqueueRefresh
// takes the debounce, SET NX); the warm-up takes every debounce, so during
// the runs no click does. The round trip is counted by internal/app's
// TestLinkedClickIsOneRoundTrip.

// BaselineRoundTrips is the number of Redis round trips of the baseline: a
// bare handler reading the session's practitioner (HGET) and then the link
// (HGET), the least a click can do when the session says who clicked and
// the link which patient (issue 16).
const BaselineRoundTrips = 2

// receiver measures scenario 1: the linked-patient path against a bare
// handler doing the two reads a click cannot do without.
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
	flow, stopFlow, err := startFlowHandler(e.m.Flows)
	if err != nil {
		return err
	}
	defer stopFlow()

	appOp := func(ctx context.Context, client, i int) error {
		p := c.Practitioners[client]
		return linkedClick(ctx, hc, e.url, tokens[client], p.ClinikoPatients[i%len(p.ClinikoPatients)])
	}
	baseOp := func(ctx context.Context, client, i int) error {
		p := c.Practitioners[client]
		return linkedClick(ctx, hc, base, tokens[client], p.ClinikoPatients[i%len(p.ClinikoPatients)])
	}
	flowOp := func(ctx context.Context, client, i int) error {
		p := c.Practitioners[client]
		return linkedClick(ctx, hc, flow, tokens[client], p.ClinikoPatients[i%len(p.ClinikoPatients)])
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
		f, err := loadgen.Run(ctx, lo, flowOp)
		if err != nil {
			return err
		}
		if a.Errors > 0 || b.Errors > 0 || f.Errors > 0 {
			return fmt.Errorf("errors in run %d: app %d (%v), baseline %d (%v), flow %d (%v)", run, a.Errors, a.FirstErr, b.Errors, b.FirstErr, f.Errors, f.FirstErr)
		}
		res.App = append(res.App, a)
		res.Base = append(res.Base, b)
		res.Flow = append(res.Flow, f)
		r.logf("  run %d: app %.0f req/s p50 %s p99 %s; baseline %.0f req/s p50 %s p99 %s; flow alone %.0f req/s p50 %s p99 %s", run+1,
			a.Throughput(), loadgen.Ms(a.Percentile(50)), loadgen.Ms(a.Percentile(99)),
			b.Throughput(), loadgen.Ms(b.Percentile(50)), loadgen.Ms(b.Percentile(99)),
			f.Throughput(), loadgen.Ms(f.Percentile(50)), loadgen.Ms(f.Percentile(99)))
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

// startBaseline starts the bare handler: it reads the session cookie, the
// session's practitioner (HGET of the session hash) and the link (HGET), on
// the app's own keys, with the same go-redis client options as the app and
// nothing else (no decoding, expiry, access check, middleware, logging or
// background work), then redirects. It is the floor the receiver is
// compared against.
func startBaseline(redisURL string, c *rig.Clinic) (string, func(), error) {
	rdb, err := redisClient(redisURL) // the same client options as the app's
	if err != nil {
		return "", nil, err
	}
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
		pid, err := rdb.HGet(ctx, "pmsb:sess:"+hex.EncodeToString(sum[:]), "pid").Result()
		if err != nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		// 2. link
		patID, err := rdb.HGet(ctx, "pmsb:links:"+subOf[pid]+":au1", cid).Result()
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
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

// startFlowHandler starts a bare handler around the app's own click flow,
// flows.OpenLinked (the click script, the refresh check), with none of the
// app's HTTP middleware (request log line, metrics, security headers, host
// and cross-origin checks, client address, server timeouts): what the
// linked path costs by itself, next to the baseline's two reads.
func startFlowHandler(f *flows.Flows) (string, func(), error) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie("pmsbridge_session")
		if err != nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		lc, err := f.OpenLinked(r.Context(), ck.Value, r.URL.Query().Get("patient_id"))
		if err != nil || lc.PatientID == "" {
			http.Error(w, fmt.Sprintf("not answered by the fast path: %v", err), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/patients/"+lc.PatientID, http.StatusSeeOther)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}
