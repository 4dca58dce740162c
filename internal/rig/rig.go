// Package rig sets up real pmsbridge processes and the data they work on,
// for the benchmark command (cmd/pmsbridge-bench) and the resilience tests
// (internal/resilience): it builds the pmsbridge binary, runs it as a child
// process configured through PMSBRIDGE_* variables, reads its memory use,
// seeds clinics straight into Redis (the same store code, the same
// encryption key) with matching users and patients in the Cliniko sandbox,
// and sends signed programme webhooks. Everything talks to 127.0.0.1 only.
package rig

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/physitrack/pmsbridge/bridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/store"
)

// Fixed secrets of rig processes (they only ever run on loopback).
const (
	WebhookSecret = "rig-webhook-secret-0123456789"
	AdminToken    = "rig-admin-token-0123456789"
	UserAgent     = "pmsbridge rig (dev@pmsbridge.example)"
	// PublicURL is the public address of rig processes; 127.0.0.1 is an
	// extra host, so requests to the listener are answered.
	PublicURL = "http://pmsbridge.test"
	// Password is every seeded practitioner's password.
	Password = "correct horse battery"
)

// NewEncryptionKey returns a random secrets.encryption_key (base64, 32
// bytes).
func NewEncryptionKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// Build compiles cmd/pmsbridge into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pmsbridge")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/physitrack/pmsbridge/cmd/pmsbridge")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build pmsbridge: %w\n%s", err, out)
	}
	return bin, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ProcessConfig is what a child pmsbridge process is given.
type ProcessConfig struct {
	Binary        string
	Mode          string // run, serve or work
	RedisURL      string
	ClinikoURL    string // the sandbox's BaseURL()
	EncryptionKey string
	// RequestsPerMinute is cliniko.requests_per_minute (0: the default).
	RequestsPerMinute int
	// Port is the HTTP port (0: a free one is picked).
	Port int
	// LogLevel is log.level (default "info").
	LogLevel string
	// Extra holds further PMSBRIDGE_* variables.
	Extra map[string]string
}

// Process is a running child pmsbridge process.
type Process struct {
	URL  string
	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{}
	err  error
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 8<<20 { // keep the start and stop growing
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Env returns the process's environment variables.
func (c ProcessConfig) Env() []string {
	env := map[string]string{
		"PMSBRIDGE_REGION":                 "au",
		"PMSBRIDGE_PUBLIC_URL":             PublicURL,
		"PMSBRIDGE_HTTP_ADDR":              "127.0.0.1:" + strconv.Itoa(c.Port),
		"PMSBRIDGE_HTTP_EXTRA_HOSTS":       "127.0.0.1",
		"PMSBRIDGE_REDIS_URL":              c.RedisURL,
		"PMSBRIDGE_CLINIKO_BASE_URL":       c.ClinikoURL,
		"PMSBRIDGE_CLINIKO_USER_AGENT":     UserAgent,
		"PMSBRIDGE_SECRETS_ENCRYPTION_KEY": c.EncryptionKey,
		"PMSBRIDGE_WEBHOOKS_SECRET":        WebhookSecret,
		"PMSBRIDGE_ADMIN_TOKEN":            AdminToken,
		"PMSBRIDGE_LOG_FORMAT":             "json",
		"PMSBRIDGE_LOG_LEVEL":              c.LogLevel,
	}
	if c.LogLevel == "" {
		env["PMSBRIDGE_LOG_LEVEL"] = "info"
	}
	if c.RequestsPerMinute > 0 {
		env["PMSBRIDGE_CLINIKO_REQUESTS_PER_MINUTE"] = strconv.Itoa(c.RequestsPerMinute)
	}
	for k, v := range c.Extra {
		env[k] = v
	}
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// Start starts the process and waits until /healthz answers (for modes
// with HTTP) or a moment has passed (work).
func Start(ctx context.Context, c ProcessConfig) (*Process, error) {
	if c.Mode == "" {
		c.Mode = "run"
	}
	if c.Port == 0 {
		var err error
		if c.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(c.Binary, c.Mode)
	cmd.Env = c.Env()
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pmsbridge %s: %w", c.Mode, err)
	}
	p := &Process{URL: "http://127.0.0.1:" + strconv.Itoa(c.Port), cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if c.Mode == "work" {
		select {
		case <-p.done:
			return nil, fmt.Errorf("pmsbridge work exited at once: %v\n%s", p.err, logs.String())
		case <-time.After(500 * time.Millisecond):
			return p, nil
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("pmsbridge %s exited at once: %v\n%s", c.Mode, p.err, logs.String())
		case <-ctx.Done():
			p.Kill()
			return nil, ctx.Err()
		default:
		}
		resp, err := http.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("pmsbridge %s did not become healthy in 30s\n%s", c.Mode, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Logs returns what the process wrote so far.
func (p *Process) Logs() string { return p.logs.String() }

// Kill sends SIGKILL and waits for the process to go.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Terminate sends SIGTERM and waits up to timeout for the exit; it returns
// the exit code (-1 if the process had to be killed after the timeout).
func (p *Process) Terminate(timeout time.Duration) int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Memory is a process's resident memory, from /proc/<pid>/status.
type Memory struct {
	RSSKiB  int // VmRSS: now
	PeakKiB int // VmHWM: the peak since the process started
}

// Memory reads the process's current and peak resident set size.
func (p *Process) Memory() (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.Atoi(fields[0])
		switch name {
		case "VmRSS":
			m.RSSKiB = n
		case "VmHWM":
			m.PeakKiB = n
		}
	}
	if m.PeakKiB == 0 {
		return m, errors.New("no VmHWM in /proc status")
	}
	return m, sc.Err()
}

// OpenStore opens a store on a process's Redis with its encryption key, to
// seed data and look at results the way the process sees them.
func OpenStore(redisURL, encryptionKey string) (*store.Store, func(), error) {
	ru, err := config.ParseRedisURL(redisURL)
	if err != nil {
		return nil, nil, err
	}
	key, err := store.ParseKey(encryptionKey)
	if err != nil {
		return nil, nil, err
	}
	kr, err := store.NewKeyring(key)
	if err != nil {
		return nil, nil, err
	}
	rdb := ru.Client()
	st, err := store.New(rdb, store.Options{Keys: kr, Argon2: store.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return st, func() { rdb.Close() }, nil
}

// Clinic is a seeded subscription: practitioners with Cliniko keys (one
// sandbox user each) and, per practitioner, Cliniko patients in the sandbox,
// linked in pmsbridge when asked.
type Clinic struct {
	Subscription  store.Subscription
	Account       *sandbox.Account
	Practitioners []Practitioner
}

// Practitioner is a seeded practitioner and what belongs to them.
type Practitioner struct {
	store.Practitioner
	ClinikoUserID string
	ClinikoKey    string
	// ClinikoPatients are the ids of their patients in the sandbox.
	ClinikoPatients []string
	// Patients are our patient ids of the linked ones (same order).
	Patients []string
}

// ClinicSpec says what SeedClinic makes.
type ClinicSpec struct {
	Name          string
	Practitioners int
	PatientsEach  int
	Link          bool // import the patients into pmsbridge (owned by their practitioner)
	// Reuse, when set, is an earlier clinic whose sandbox account, users
	// (keys) and patients this one shares: practitioner i gets the i-th
	// practitioner's Cliniko user and patients. Links are per subscription,
	// so to pmsbridge the patients are new again.
	Reuse *Clinic
}

// SeedClinic seeds a clinic into st and the sandbox.
func SeedClinic(ctx context.Context, st *store.Store, sb *sandbox.Sandbox, spec ClinicSpec) (*Clinic, error) {
	sub, err := st.CreateSubscription(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	c := &Clinic{Subscription: sub}
	if spec.Reuse != nil {
		c.Account = spec.Reuse.Account
	} else {
		c.Account = sb.AddAccount("au1", spec.Name)
	}
	slug := strings.ToLower(strings.ReplaceAll(spec.Name, " ", "-"))
	for i := 0; i < spec.Practitioners; i++ {
		email := fmt.Sprintf("p%d@%s.example", i, slug)
		pr, err := st.CreatePractitioner(ctx, store.NewPractitioner{SubscriptionID: sub.ID, Email: email, Name: fmt.Sprintf("Practitioner %d", i), Password: Password})
		if err != nil {
			return nil, err
		}
		p := Practitioner{Practitioner: pr}
		if spec.Reuse != nil {
			old := spec.Reuse.Practitioners[i]
			p.ClinikoUserID, p.ClinikoKey, p.ClinikoPatients = old.ClinikoUserID, old.ClinikoKey, old.ClinikoPatients
		} else {
			u, key := c.Account.AddUser("Practitioner", strconv.Itoa(i), email, sandbox.RoleAdministrator)
			p.ClinikoUserID, p.ClinikoKey = u.ID, key
			for j := 0; j < spec.PatientsEach; j++ {
				dob := fmt.Sprintf("19%02d-0%d-1%d", 50+(j%50), 1+j%9, j%10)
				cp := c.Account.AddPatient(sandbox.Patient{FirstName: fmt.Sprintf("Pat%d", j), LastName: fmt.Sprintf("Of%d", i),
					Email: fmt.Sprintf("pat%d.%d@patients.example", i, j), DateOfBirth: &dob})
				p.ClinikoPatients = append(p.ClinikoPatients, cp.ID)
			}
		}
		if err := st.SetClinikoKey(ctx, pr.ID, p.ClinikoKey, store.ClinikoUser{ID: p.ClinikoUserID, Name: "Practitioner " + strconv.Itoa(i),
			Email: email, Role: sandbox.RoleAdministrator, Shard: "au1"}); err != nil {
			return nil, err
		}
		if spec.Link {
			for j, cid := range p.ClinikoPatients {
				pat, _, err := st.ImportPatient(ctx, sub.ID, "au1", cid, pr.ID, store.Patient{FirstName: fmt.Sprintf("Pat%d", j), LastName: fmt.Sprintf("Of%d", i)})
				if err != nil {
					return nil, err
				}
				p.Patients = append(p.Patients, pat.ID)
			}
		}
		c.Practitioners = append(c.Practitioners, p)
	}
	return c, nil
}

// ProgrammeEvent returns a programme.assigned webhook body.
func ProgrammeEvent(eventID, programmeID string, version int, patientID, practitionerID string, exercises int) []byte {
	type ex struct {
		Name         string `json:"name"`
		Instructions string `json:"instructions"`
		Sets         int    `json:"sets"`
		Reps         int    `json:"reps"`
		HoldSeconds  int    `json:"hold_seconds"`
		TimesPerDay  int    `json:"times_per_day"`
		DaysPerWeek  int    `json:"days_per_week"`
	}
	var exs []ex
	for i := 0; i < exercises; i++ {
		exs = append(exs, ex{Name: fmt.Sprintf("Exercise %d", i+1), Instructions: "Lie on your back with one knee bent. Tighten the thigh of the straight leg and lift it to the height of the bent knee. Hold, then lower slowly.",
			Sets: 3, Reps: 10, HoldSeconds: 5, TimesPerDay: 2, DaysPerWeek: 5})
	}
	ev := map[string]any{
		"id": eventID, "type": "programme.assigned", "created_at": time.Now().UTC().Format(time.RFC3339),
		"data": map[string]any{"programme": map[string]any{
			"id": programmeID, "version": version, "patient_id": patientID, "practitioner_id": practitionerID,
			"title": "Knee rehab, week " + strconv.Itoa(version), "notes": "Stop if pain rises above 5/10.", "exercises": exs,
		}},
	}
	b, _ := json.Marshal(ev)
	return b
}

// PostWebhook signs body and posts it to baseURL's webhook; it returns the
// status.
func PostWebhook(ctx context.Context, hc *http.Client, baseURL string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/webhooks/programmes", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(bridge.SignatureHeader, bridge.Sign(WebhookSecret, time.Now(), body))
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
