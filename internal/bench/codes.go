package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/internal/loadgen"
	"github.com/physitrack/pmsbridge/internal/rig"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/mail/mailtest"
	"github.com/physitrack/pmsbridge/store"
)

// The code-email scenario: per run, codesOneByOne assignments one at a
// time (each waits for its email, then a random pause of up to
// codesPause, so assignments land at every phase of the workers' poll),
// then codesBurst assignments at once.
const (
	codesOneByOne = 20
	codesPause    = 300 * time.Millisecond
	codesBurst    = 100
)

// CodesResult is the code-email scenario: per run, the time from each
// assignment to its email being accepted by the SMTP server.
type CodesResult struct {
	OneByOne []loadgen.Result
	Burst    []loadgen.Result
	// Poll is the workers' poll interval for the message queue (their
	// default; an idle worker looks for new tasks this often).
	Poll time.Duration
	// FastOneByOne is OneByOne again with workers polling every FastPoll:
	// the path's own time.
	FastOneByOne []loadgen.Result
	FastPoll     time.Duration
	// Deliveries and Messages count what the SMTP server took in all
	// runs: one delivery per message expected.
	Deliveries, Messages int
}

// codes measures the time from assigning a programme's first version (the
// version stored, then jobs.Codes.Assigned, as the assign workflows do)
// until the SMTP server has accepted the email with its code, against an
// in-process `pmsbridge run` with default workers and an SMTP server that
// offers STARTTLS (mailtest, on 127.0.0.1).
func (r *runner) codes(ctx context.Context) error {
	res := &CodesResult{Poll: jobs.WorkerConfig{}.WithDefaults().PollInterval, FastPoll: codesFastPoll}
	if err := r.codesWith(ctx, res, res.Poll, true); err != nil {
		return err
	}
	if err := r.codesWith(ctx, res, res.FastPoll, false); err != nil {
		return err
	}
	r.rep.Codes = res
	return nil
}

// codesFastPoll is the poll interval of the second app, which shows the
// path's own time without the wait for an idle worker's poll.
const codesFastPoll = 10 * time.Millisecond

// codesWith runs the scenario against an app whose workers poll every
// poll; the default app also takes the bursts.
func (r *runner) codesWith(ctx context.Context, res *CodesResult, poll time.Duration, main bool) error {
	smtp, err := mailtest.New(mailtest.WithSTARTTLS())
	if err != nil {
		return err
	}
	defer smtp.Close()
	sb := sandbox.New(sandbox.WithRateLimit(0))
	defer sb.Close()
	e, err := r.newApp(ctx, appSpec{mode: app.ModeRun, sandbox: sb, rpm: clickRPM, configure: func(c *config.Config, o *app.Options) {
		c.Mail = config.Mail{SMTPURL: smtp.URL(), From: "Codes <codes@clinic.example>"}
		o.MailRootCAs = smtp.RootCAs()
		o.Worker.PollInterval = poll
	}})
	if err != nil {
		return err
	}
	defer e.stop()
	if err := e.start(); err != nil {
		return err
	}
	st := e.m.Store
	c, err := rig.SeedClinic(ctx, st, sb, rig.ClinicSpec{Name: "Codes Clinic", Practitioners: 1, PatientsEach: codesBurst, Link: true})
	if err != nil {
		return err
	}
	pr := c.Practitioners[0]
	for i, id := range pr.Patients {
		if _, err := st.UpdatePatient(ctx, id, func(p *store.Patient) error {
			p.Email = fmt.Sprintf("patient%d@patients.example", i)
			return nil
		}); err != nil {
			return err
		}
	}
	w := &codesWatch{smtp: smtp}
	assign := func(patient, title string) (string, time.Time, error) {
		start := time.Now()
		prog, _, err := st.CreateProgramme(ctx, pmsbridge.Programme{PatientID: patient, PractitionerID: pr.ID, Title: title, StartsOn: "2026-11-22"})
		if err != nil {
			return "", start, err
		}
		a, err := e.m.Codes.Assigned(ctx, prog)
		if err != nil {
			return "", start, err
		}
		if a.Message == nil || a.Message.Channel != pmsbridge.ChannelEmail {
			return "", start, fmt.Errorf("assign: no email asked for (%+v)", a)
		}
		return a.Message.ID, start, nil
	}
	for run := 0; run < r.o.Runs; run++ {
		var one loadgen.Result
		t0 := time.Now()
		for i := 0; i < codesOneByOne; i++ {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(rand.N(codesPause)):
			}
			id, start, err := assign(pr.Patients[i], fmt.Sprintf("Run %d, one by one %d", run, i))
			if err != nil {
				return err
			}
			got, err := w.accepted(ctx, []string{id})
			if err != nil {
				return err
			}
			one.Latencies = append(one.Latencies, got[id].Sub(start))
			one.Ops++
		}
		one.Elapsed = time.Since(t0)
		slices.Sort(one.Latencies)
		if !main {
			res.FastOneByOne = append(res.FastOneByOne, one)
			r.logf("codes run %d, workers polling every %s: one by one p50 %s p99 %s", run+1, poll,
				loadgen.Ms(one.Percentile(50)), loadgen.Ms(one.Percentile(99)))
			continue
		}
		res.OneByOne = append(res.OneByOne, one)

		ids, starts := make([]string, codesBurst), make([]time.Time, codesBurst)
		errs := make([]error, codesBurst)
		var burst loadgen.Result
		burst.Elapsed = loadgen.Burst(codesBurst, func(i int) {
			ids[i], starts[i], errs[i] = assign(pr.Patients[i], fmt.Sprintf("Run %d, burst %d", run, i))
		})
		if err := errors.Join(errs...); err != nil {
			return err
		}
		got, err := w.accepted(ctx, ids)
		if err != nil {
			return err
		}
		for i, id := range ids {
			burst.Latencies = append(burst.Latencies, got[id].Sub(starts[i]))
		}
		burst.Ops = len(ids)
		slices.Sort(burst.Latencies)
		res.Burst = append(res.Burst, burst)
		r.logf("codes run %d: one by one p50 %s p99 %s; burst of %d p50 %s p99 %s", run+1,
			loadgen.Ms(one.Percentile(50)), loadgen.Ms(one.Percentile(99)), codesBurst, loadgen.Ms(burst.Percentile(50)), loadgen.Ms(burst.Percentile(99)))
	}
	res.Deliveries += len(smtp.Messages())
	res.Messages += len(smtp.Mailbox(""))
	return nil
}

// codesWatch finds accepted emails by their message request.
type codesWatch struct {
	smtp *mailtest.Server
	mu   sync.Mutex
	seen int
	at   map[string]time.Time // message id → first acceptance
}

// accepted waits until the SMTP server has accepted the email of every
// message request in ids and returns when each was first accepted.
func (w *codesWatch) accepted(ctx context.Context, ids []string) (map[string]time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at == nil {
		w.at = map[string]time.Time{}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		msgs := w.smtp.Messages()
		for _, m := range msgs[w.seen:] {
			// Message-ID: pmsbridge.<message id>@<domain>
			id, _, _ := strings.Cut(strings.TrimPrefix(m.MessageID, "pmsbridge."), "@")
			if _, ok := w.at[id]; !ok {
				w.at[id] = m.Received
			}
		}
		w.seen = len(msgs)
		missing := 0
		for _, id := range ids {
			if _, ok := w.at[id]; !ok {
				missing++
			}
		}
		if missing == 0 {
			out := make(map[string]time.Time, len(ids))
			for _, id := range ids {
				out[id] = w.at[id]
			}
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("codes: %d of %d emails not accepted within 2 minutes", missing, len(ids))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (c *CodesResult) medians(rs []loadgen.Result) (p50, p99 float64) {
	return loadgen.Median(percentiles(rs, 50)), loadgen.Median(percentiles(rs, 99))
}

// summaryRow is the scenario's lines in the report's summary table.
func (c *CodesResult) summaryRow(w func(string, ...any)) {
	p50, p99 := c.medians(c.OneByOne)
	w("| code email, assign → accepted by the SMTP server, one at a time: p50 / p99 | %.0f / %.0f ms | idle workers look every %s ± half | recorded | %d deliveries for %d messages |\n",
		p50, p99, c.Poll, c.Deliveries, c.Messages)
	f50, f99 := c.medians(c.FastOneByOne)
	w("| code email, one at a time, workers polling every %s: p50 / p99 | %.0f / %.0f ms | the path without the poll's wait | recorded | |\n", c.FastPoll, f50, f99)
	b50, b99 := c.medians(c.Burst)
	w("| code email, burst of %d assigns: p50 / p99 | %.0f / %.0f ms | | recorded | |\n", codesBurst, b50, b99)
}

// section is the scenario's section of the report.
func (c *CodesResult) section(w func(string, ...any)) {
	w("## 9. Code email: from assign to accepted by the SMTP server\n\n")
	w("An in-process `pmsbridge run` (default workers: %s poll interval, %d at once) with `mail.smtp_url` pointing at an\n", c.Poll, jobs.DefaultConcurrency)
	w("SMTP server on 127.0.0.1 (`mail/mailtest`, STARTTLS with a self-signed certificate the app trusts, as a\n")
	w("submission server would offer it). An assignment is timed from the store write of the programme's first version\n")
	w("(`store.CreateProgramme`) through `jobs.Codes.Assigned` (records the message request and queues its task, as\n")
	w("the assign workflows do) until the SMTP server has the whole message (its own clock, the same process's: the\n")
	w("moment before its 250 reply). In between: a worker picks the task up, reads the records (patient details\n")
	w("decrypted), marks the attempt, connects, STARTTLS, sends, and the record says sent.\n\n")
	w("Each run: %d assignments one at a time, each after a random pause of up to %s (so they land at every phase of\n", codesOneByOne, codesPause)
	w("an idle worker's poll), then %d assignments at once (one patient each). The one-at-a-time runs are repeated\n", codesBurst)
	w("against a second app whose workers poll every %s (`jobs.WorkerConfig.PollInterval`), to show the path's own\n", c.FastPoll)
	w("time.\n\n")
	w("| | median | runs |\n| --- | --- | --- |\n")
	w("| one at a time p50 (ms) | %.1f | %s |\n", loadgen.Median(percentiles(c.OneByOne, 50)), fmtList(percentiles(c.OneByOne, 50), "%.1f"))
	w("| one at a time p99 (ms) | %.1f | %s |\n", loadgen.Median(percentiles(c.OneByOne, 99)), fmtList(percentiles(c.OneByOne, 99), "%.1f"))
	w("| one at a time, workers polling every %s, p50 (ms) | %.1f | %s |\n", c.FastPoll, loadgen.Median(percentiles(c.FastOneByOne, 50)), fmtList(percentiles(c.FastOneByOne, 50), "%.1f"))
	w("| one at a time, workers polling every %s, p99 (ms) | %.1f | %s |\n", c.FastPoll, loadgen.Median(percentiles(c.FastOneByOne, 99)), fmtList(percentiles(c.FastOneByOne, 99), "%.1f"))
	w("| burst of %d p50 (ms) | %.1f | %s |\n", codesBurst, loadgen.Median(percentiles(c.Burst, 50)), fmtList(percentiles(c.Burst, 50), "%.1f"))
	w("| burst of %d p99 (ms) | %.1f | %s |\n\n", codesBurst, loadgen.Median(percentiles(c.Burst, 99)), fmtList(percentiles(c.Burst, 99), "%.1f"))
	w("The SMTP servers took %d deliveries for %d messages (one each expected). One at a time, the wait is mostly the\n", c.Deliveries, c.Messages)
	w("idle worker's poll: between looks an idle asynq worker sleeps from half to one and a half poll intervals (it\n")
	w("adds jitter), %s–%s at the default %s; compare the runs at %s. A burst is bounded by\n", c.Poll/2, c.Poll*3/2, c.Poll, c.FastPoll)
	w("the %d workers sending one email each at a time, on the machine's shared CPUs.\n", jobs.DefaultConcurrency)
	w("A real mail server adds its network round trips (about 6 for a STARTTLS submission) and its own accept time.\n\n")
	w("Reproduce: `go run ./cmd/pmsbridge-bench -only codes -out /tmp/b.md`\n\n")
}
