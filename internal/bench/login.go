package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/loadgen"
	"github.com/physitrack/pmsbridge/internal/rig"
)

// loginBurst is how many logins the login scenario fires at once.
const loginBurst = 300

// loginAccounts is how many real practitioners are among them (with their
// right password); the others are made-up accounts from made-up clients.
const loginAccounts = 10

// LoginResult is the login burst against a real `pmsbridge run`.
type LoginResult struct {
	Requests   int
	IdleKiB    int // VmRSS just after start
	PeakKiB    int // VmHWM after the burst
	CPUSeconds float64
	Elapsed    time.Duration // from the start barrier to the last answer
	Status     map[int]int
	Errors     int // requests without an answer (connection closed, timeout)
}

// login measures the peak RSS and CPU time of a real `pmsbridge run` while
// loginBurst logins arrive at once, each from its own client address (the
// process trusts 127.0.0.1 as its proxy, so X-Forwarded-For tells them
// apart and no lock-out stops them before the password check): every one
// would be an argon2id hash of 19 MiB if nothing bounded them.
func (r *runner) login(ctx context.Context) error {
	bin, err := r.binary(ctx, "")
	if err != nil {
		return err
	}
	sb := sandbox.New()
	defer sb.Close()
	key, redisURL := rig.NewEncryptionKey(), r.freshDB()
	p, err := rig.Start(ctx, rig.ProcessConfig{Binary: bin, Mode: "run", RedisURL: redisURL, ClinikoURL: sb.BaseURL(), EncryptionKey: key,
		Extra: map[string]string{"PMSBRIDGE_HTTP_TRUSTED_PROXIES": "127.0.0.1"}})
	if err != nil {
		return err
	}
	defer p.Kill()
	st, closeStore, err := rig.OpenStore(redisURL, key)
	if err != nil {
		return err
	}
	defer closeStore()
	c, err := rig.SeedClinic(ctx, st, sb, rig.ClinicSpec{Name: "Login Clinic", Practitioners: loginAccounts})
	if err != nil {
		return err
	}
	idle, err := p.Memory()
	if err != nil {
		return err
	}
	cpu0, err := cpuSeconds(p.PID())
	if err != nil {
		return err
	}
	res := &LoginResult{Requests: loginBurst, IdleKiB: idle.RSSKiB, Status: map[int]int{}}

	hc := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: loginBurst},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       time.Minute,
	}
	defer hc.CloseIdleConnections()
	reqs := make([]*http.Request, loginBurst)
	for i := range reqs {
		form := url.Values{"email": {fmt.Sprintf("someone%d@nowhere.example", i)}, "password": {"not the password"}}
		if i < len(c.Practitioners) {
			form = url.Values{"email": {c.Practitioners[i].Email}, "password": {rig.Password}}
		}
		reqs[i], _ = http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/login", strings.NewReader(form.Encode()))
		reqs[i].Header.Set("Content-Type", "application/x-www-form-urlencoded")
		reqs[i].Header.Set("X-Forwarded-For", fmt.Sprintf("100.64.%d.%d", i/250, i%250+1))
	}
	var mu sync.Mutex
	res.Elapsed = loadgen.Burst(loginBurst, func(i int) {
		resp, err := hc.Do(reqs[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Errors++
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.Status[resp.StatusCode]++
	})
	m, err := p.Memory()
	if err != nil {
		return err
	}
	res.PeakKiB = m.PeakKiB
	cpu1, err := cpuSeconds(p.PID())
	if err != nil {
		return err
	}
	res.CPUSeconds = cpu1 - cpu0
	if code := p.Terminate(20 * time.Second); code != 0 {
		return fmt.Errorf("pmsbridge run exited %d after SIGTERM", code)
	}
	r.logf("  login burst: idle RSS %d KiB, peak %d KiB, %.2f CPU s, %s, answers %v, %d without an answer", res.IdleKiB, res.PeakKiB, res.CPUSeconds, res.Elapsed.Round(time.Millisecond), res.Status, res.Errors)
	r.rep.Login = res
	return nil
}

// cpuSeconds is the user and system CPU time a process has used
// (/proc/<pid>/stat, fields 14 and 15, in clock ticks of 1/100 s).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start after its closing parenthesis.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return (utime + stime) / 100, nil
}

// loginTarget is the goal for the peak RSS of the login burst.
const loginTargetMiB = 150

func (l *LoginResult) statusText() string {
	var codes []int
	for c := range l.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d × %d", l.Status[c], c))
	}
	if l.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d without an answer", l.Errors))
	}
	return strings.Join(parts, ", ")
}

// summaryRow is the login burst's line in the report's summary table.
func (l *LoginResult) summaryRow(w func(string, ...any)) {
	w("| peak RSS of `pmsbridge run`, burst of %d logins | %s | %s just after start | < %d MiB | %s |\n",
		l.Requests, kib(l.PeakKiB), kib(l.IdleKiB), loginTargetMiB, yes(l.PeakKiB < loginTargetMiB*1024))
}

// section is the login burst's section of the report.
func (l *LoginResult) section(w func(string, ...any)) {
	w("## 8. Burst of %d logins (bounded password hashing)\n\n", l.Requests)
	w("The real `pmsbridge run` binary (as in 6) with `PMSBRIDGE_HTTP_TRUSTED_PROXIES=127.0.0.1`. %d `POST /login`\n", l.Requests)
	w("requests are built first and released together at a start barrier, each with its own client address in\n")
	w("`X-Forwarded-For` (so no per-client lock-out stops them before the password check): %d practitioners\n", loginAccounts)
	w("with their right password and %d made-up accounts with a wrong one. Unbounded, every one would be an\n", l.Requests-loginAccounts)
	w("argon2id hash of 19 MiB at once. The process checks at most GOMAXPROCS passwords at once, lets\n")
	w("4 × that many wait for a slot, and answers the rest at once with 503 and `Retry-After` (unchecked, not\n")
	w("counted towards a lock-out).\n\n")
	w("| | |\n| --- | --- |\n")
	w("| RSS just after start (VmRSS) | %s |\n", kib(l.IdleKiB))
	w("| peak RSS (VmHWM) after the burst | %s (target < %d MiB: %s) |\n", kib(l.PeakKiB), loginTargetMiB, yes(l.PeakKiB < loginTargetMiB*1024))
	w("| CPU time of the process during the burst | %.2f s |\n", l.CPUSeconds)
	w("| from the barrier to the last answer | %s |\n", l.Elapsed.Round(time.Millisecond))
	w("| answers | %s |\n\n", l.statusText())
	w("Reproduce: `go run ./cmd/pmsbridge-bench -only login -out /tmp/b.md`\n\n")
}
