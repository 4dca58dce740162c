// Package apptest starts the whole pmsbridge app for end-to-end tests: a
// real Redis (from redistest), the Cliniko sandbox with its demo seed, and
// the app in "run" mode on 127.0.0.1:0. It also gives logged-in HTTP
// clients and seeding shortcuts. Test packages that use it call
// redistest.Main from their TestMain.
package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/app"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/mail/mailtest"
	"github.com/physitrack/pmsbridge/sms/twiliotest"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// Options tune an Env. The zero value is a normal app.
type Options struct {
	Mode      app.Mode         // default app.ModeRun
	RedisURL  string           // default a fresh database of the shared test server
	Sandbox   *sandbox.Sandbox // default a new demo sandbox
	Configure func(*config.Config)
	Now       func() time.Time
	Store     func(*store.Options) // adjusts the store's options
}

// Env is a running app with what a test needs around it.
type Env struct {
	T       testing.TB
	App     *app.Main
	URL     string // http://127.0.0.1:port
	Sandbox *sandbox.Sandbox
	Store   *store.Store
	Jobs    *jobs.Client
	Config  config.Config
	Logs    *SyncBuffer
	cancel  context.CancelFunc
	done    chan error
}

// Secrets of every test app (fixed so tests can sign webhooks and call the
// admin API).
const (
	WebhookSecret = "test-webhook-secret-0123456789"
	AdminToken    = "test-admin-token-0123456789"
)

// SyncBuffer is a goroutine-safe buffer (the app's log output).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Config returns a valid configuration for a test app on redisURL and sb.
func Config(redisURL string, sb *sandbox.Sandbox) config.Config {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return config.Config{
		Region: "au", PublicURL: "http://pmsbridge.test",
		HTTP:     config.HTTP{Addr: "127.0.0.1:0", ExtraHosts: []string{"127.0.0.1"}},
		Redis:    config.Redis{URL: redisURL},
		Cliniko:  config.Cliniko{BaseURL: sb.BaseURL(), UserAgent: "pmsbridge tests (dev@pmsbridge.example)"},
		Secrets:  config.Secrets{EncryptionKey: base64.StdEncoding.EncodeToString(key)},
		Webhooks: config.Webhooks{Secret: WebhookSecret},
		Admin:    config.Admin{Token: AdminToken},
		Log:      config.Log{Format: "json", Level: "debug"},
	}.WithDefaults()
}

// Start starts an app for t and stops it when t ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Mode == "" {
		o.Mode = app.ModeRun
	}
	if o.RedisURL == "" {
		o.RedisURL = redistest.URL(t)
	}
	if o.Sandbox == nil {
		o.Sandbox = sandbox.NewDemo()
		t.Cleanup(o.Sandbox.Close)
	}
	cfg := Config(o.RedisURL, o.Sandbox)
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("apptest: config: %v", err)
	}
	logs := &SyncBuffer{}
	m, err := app.New(context.Background(), app.Options{Mode: o.Mode, Config: cfg, Version: "test", Out: io.Discard, LogOut: logs,
		RedisWait: 5 * time.Second, Worker: jobs.WorkerConfig{ShutdownTimeout: 2 * time.Second}, Now: o.Now, Store: o.Store})
	if err != nil {
		t.Fatalf("apptest: start app: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Env{T: t, App: m, URL: m.URL(), Sandbox: o.Sandbox, Store: m.Store, Jobs: m.Jobs, Config: cfg, Logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- m.Run(ctx) }()
	t.Cleanup(e.Stop)
	if e.URL != "" {
		o.Sandbox.SetAppURL(e.URL)
		e.waitReady()
	}
	return e
}

func (e *Env) waitReady() {
	e.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(e.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.T.Fatalf("apptest: app did not become healthy; logs:\n%s", e.Logs.String())
}

// Stop shuts the app down gracefully (idempotent).
func (e *Env) Stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		e.T.Errorf("apptest: app did not stop within 20s")
	}
	e.App.Close()
}

// Messaging is where an app sends patients their codes: a real SMTP server
// (mailtest) and the Twilio sandbox, started by the test.
type Messaging struct {
	Mail *mailtest.Server
	SMS  *twiliotest.Sandbox
}

// MessagingFrom is the sender of codes by email in tests.
const MessagingFrom = "Codes <codes@clinic.example>"

// StartMessaging starts an SMTP server and a Twilio sandbox for t, stopped
// when t ends. Pass its Configure as Options.Configure (or call it from
// there) to send codes to them.
func StartMessaging(t testing.TB) *Messaging {
	t.Helper()
	smtp, err := mailtest.New()
	if err != nil {
		t.Fatalf("apptest: smtp server: %v", err)
	}
	t.Cleanup(func() { _ = smtp.Close() })
	tw := twiliotest.New()
	t.Cleanup(tw.Close)
	return &Messaging{Mail: smtp, SMS: tw}
}

// Configure sets c's mail.* and sms.* to the test's servers.
func (m *Messaging) Configure(c *config.Config) {
	c.Mail = config.Mail{SMTPURL: m.Mail.URL(), From: MessagingFrom}
	c.SMS = config.SMS{TwilioAccountSID: m.SMS.AccountSID(), TwilioAuthToken: m.SMS.AuthToken(), From: twiliotest.DemoFrom, TwilioBaseURL: m.SMS.URL()}
}

// Clinic is a seeded subscription with practitioners.
type Clinic struct {
	Subscription  store.Subscription
	Practitioners map[string]store.Practitioner // by email
}

// Password is every seeded practitioner's password.
const Password = "correct horse battery"

// SeedClinic creates a subscription with practitioners; keys maps a
// practitioner email to a sandbox Cliniko key to save for them ("" for
// none). The Cliniko user of a key is read from the sandbox via the app's
// own key check, so it matches what the settings page would save.
func (e *Env) SeedClinic(name string, keys map[string]string) Clinic {
	e.T.Helper()
	ctx := context.Background()
	sub, err := e.Store.CreateSubscription(ctx, name)
	if err != nil {
		e.T.Fatal(err)
	}
	c := Clinic{Subscription: sub, Practitioners: map[string]store.Practitioner{}}
	for email, key := range keys {
		p, err := e.Store.CreatePractitioner(ctx, store.NewPractitioner{SubscriptionID: sub.ID, Email: email, Name: nameOf(email), Password: Password})
		if err != nil {
			e.T.Fatal(err)
		}
		c.Practitioners[email] = p
		if key != "" {
			e.SaveKey(p.ID, key)
		}
	}
	return c
}

func nameOf(email string) string {
	local, _, _ := strings.Cut(email, "@")
	return "Dr " + strings.ToUpper(local[:1]) + local[1:]
}

// SaveKey saves a Cliniko key for a practitioner as the settings page does
// (flows.SaveKey: checked against the sandbox with GET /user, its account
// read with GET /businesses and adopted by the practitioner's
// subscription, the jobs it fixes replayed).
func (e *Env) SaveKey(practitionerID, key string) {
	e.T.Helper()
	ctx := context.Background()
	p, err := e.Store.GetPractitioner(ctx, practitionerID)
	if err == nil {
		_, err = e.App.Flows.SaveKey(ctx, p, key)
	}
	if err != nil {
		e.T.Fatalf("apptest: save key: %v", err)
	}
}

// Browser is an HTTP client with a cookie jar that does not follow
// redirects (tests look at them).
type Browser struct {
	e *Env
	C *http.Client
}

// NewBrowser returns a client with an empty cookie jar.
func (e *Env) NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{e: e, C: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Login logs in and fails the test if it does not work.
func (e *Env) Login(email string) *Browser {
	e.T.Helper()
	b := e.NewBrowser()
	resp := b.PostForm("/login", url.Values{"email": {email}, "password": {Password}})
	if resp.StatusCode != http.StatusSeeOther {
		e.T.Fatalf("login %s: status %d: %s", email, resp.StatusCode, resp.Body)
	}
	return b
}

// Response is a read response.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       string
}

// Location is the redirect target's path and query.
func (r Response) Location() string {
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		return ""
	}
	return u.RequestURI()
}

func (b *Browser) do(req *http.Request) Response {
	b.e.T.Helper()
	resp, err := b.C.Do(req)
	if err != nil {
		b.e.T.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

// Get fetches a path.
func (b *Browser) Get(path string) Response {
	b.e.T.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.URL+path, nil)
	return b.do(req)
}

// PostForm posts a form as a same-origin browser would.
func (b *Browser) PostForm(path string, form url.Values) Response {
	b.e.T.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// Do sends any request (relative URL).
func (b *Browser) Do(method, path string, body io.Reader, header http.Header) Response {
	b.e.T.Helper()
	req, _ := http.NewRequest(method, b.e.URL+path, body)
	for k, v := range header {
		req.Header[k] = v
	}
	return b.do(req)
}

// Eventually polls cond until it holds or 15 s pass.
func (e *Env) Eventually(what string, cond func() bool) {
	e.T.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.T.Fatalf("timed out waiting for %s; logs (tail):\n%s", what, tail(e.Logs.String(), 4000))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Open clicks "Open in pmsbridge" for a Cliniko patient id and follows the
// app's answer until a patient page or an error page, returning the last
// response and our patient id when it landed on one.
func (b *Browser) Open(clinikoID string) (Response, string) {
	b.e.T.Helper()
	path := "/cliniko_patient_import?patient_id=" + url.QueryEscape(clinikoID)
	var r Response
	for i := 0; i < 100; i++ {
		r = b.Get(path)
		if r.StatusCode == http.StatusSeeOther {
			loc := r.Location()
			if id, ok := strings.CutPrefix(loc, "/patients/"); ok {
				return r, id
			}
			if !strings.HasPrefix(loc, "/cliniko_patient_import") {
				return r, ""
			}
			path = loc
			continue
		}
		if r.StatusCode == http.StatusAccepted { // the waiting page
			time.Sleep(100 * time.Millisecond)
			path = "/cliniko_patient_import?patient_id=" + url.QueryEscape(clinikoID) + "&check=1"
			continue
		}
		return r, ""
	}
	b.e.T.Fatalf("open %s: never settled; last status %d", clinikoID, r.StatusCode)
	return r, ""
}

// String describes the env for failure messages.
func (e *Env) String() string { return fmt.Sprintf("app at %s", e.URL) }

// DumpRedis returns every key of the app's Redis database with its value
// (every type, and its DUMP serialisation), as text, and how many keys
// there were: for tests that look for what must never be stored.
func (e *Env) DumpRedis() (string, int) {
	e.T.Helper()
	ctx := context.Background()
	rdb := e.App.Redis()
	var all bytes.Buffer
	keys := 0
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		keys++
		all.WriteString("\nKEY " + k + "\n")
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			e.T.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rdb.XRange(ctx, k, "-", "+").Result()
		case "none": // expired meanwhile
		default:
			e.T.Errorf("key %s has unexpected type %s", k, typ)
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			e.T.Fatalf("read %s: %v", k, err)
		}
		fmt.Fprintf(&all, "%v\n", v)
		if d, err := rdb.Dump(ctx, k).Result(); err == nil {
			all.WriteString(d)
		}
	}
	if err := iter.Err(); err != nil {
		e.T.Fatal(err)
	}
	return all.String(), keys
}
