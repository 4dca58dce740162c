// Package app wires pmsbridge together: configuration in, Redis, store,
// Cliniko client, jobs and HTTP server built and started, and shut down in
// order. Main is the running program; cmd/pmsbridge and the end-to-end tests
// start it the same way (tests on :0).
package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/physitrack/pmsbridge/bridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/mail"
	"github.com/physitrack/pmsbridge/mail/mailtest"
	"github.com/physitrack/pmsbridge/sms"
	"github.com/physitrack/pmsbridge/sms/twiliotest"
	"github.com/physitrack/pmsbridge/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
)

// Mode is what a process does.
type Mode string

// The process modes.
const (
	ModeServe Mode = "serve" // HTTP only
	ModeWork  Mode = "work"  // workers and scheduler only
	ModeRun   Mode = "run"   // both
	ModeDev   Mode = "dev"   // both, on embedded Redis with the Cliniko sandbox and demo data
)

func (m Mode) serves() bool { return m != ModeWork }
func (m Mode) works() bool  { return m != ModeServe }

// Options configure a Main.
type Options struct {
	Mode    Mode
	Config  config.Config // validated
	Version string
	// Out receives the dev banner. Default os.Stdout.
	Out io.Writer
	// LogOut receives logs. Default os.Stderr.
	LogOut io.Writer
	// RedisWait is how long start-up waits for Redis. Default 30s.
	RedisWait time.Duration
	// Worker overrides worker settings (tests use shorter timeouts).
	Worker jobs.WorkerConfig
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
	// Store adjusts the store's options (tests: smaller bounds).
	Store func(*store.Options)
	// MailRootCAs are the certificate authorities trusted for mail.
	// smtp_url's server (tests and benchmarks against a local server with
	// a self-signed certificate). Nil: the system's.
	MailRootCAs *x509.CertPool
}

// Main is a running pmsbridge process.
type Main struct {
	opts Options
	cfg  config.Config
	log  *slog.Logger
	reg  *prometheus.Registry
	rdb  redis.UniversalClient
	// dial opens another connection to the same Redis (for a part that
	// must own its connection: the scheduler).
	dial    func() redis.UniversalClient
	mini    *miniredis.Miniredis
	sandbox *sandbox.Sandbox
	Store   *store.Store
	Cliniko *cliniko.Client
	Jobs    *jobs.Client
	// Flows are the workflows the HTTP side runs (nil without HTTP).
	Flows *flows.Flows
	// Codes asks for the messages that send patients their codes (on
	// assign, and "send again"); it knows which channels are configured.
	Codes   *jobs.Codes
	mail    *mail.Sender // nil when email is not configured
	sms     *sms.Client  // nil when SMS is not configured
	devMail *mailtest.Server
	devSMS  *twiliotest.Sandbox
	worker  *jobs.Worker
	server  *http.Server
	ln      net.Listener
	url     string
	closeMu sync.Mutex
	closed  bool
	runErr  chan error
	demo    *Demo
}

// New builds every part of the process and opens the listener, but starts
// nothing yet (Run does).
func New(ctx context.Context, opts Options) (m *Main, err error) {
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.LogOut == nil {
		opts.LogOut = os.Stderr
	}
	if opts.RedisWait == 0 {
		opts.RedisWait = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m = &Main{opts: opts, cfg: opts.Config, runErr: make(chan error, 2)}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	m.log = newLogger(opts.LogOut, m.cfg.Log)
	setRedisLogger(m.log)
	m.reg = prometheus.NewRegistry()
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if opts.Mode == ModeDev {
		if err := m.startDevServices(); err != nil {
			return nil, err
		}
	} else {
		ru, err := config.ParseRedisURL(m.cfg.Redis.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		m.dial = ru.Client
		m.rdb = m.dial()
		if err := checkRedis(ctx, m.rdb, opts.RedisWait, m.log); err != nil {
			return nil, err
		}
	}

	keys, err := keyring(m.cfg.Secrets)
	if err != nil {
		return nil, err
	}
	ack := 0
	if opts.Mode != ModeDev {
		ack = m.cfg.Redis.AckReplicasFor()
	}
	so := store.Options{Keys: keys, Now: opts.Now, AckReplicas: ack, DefaultTimeZone: m.cfg.TimeZone()}
	if opts.Store != nil {
		opts.Store(&so)
	}
	m.Store, err = store.New(m.rdb, so)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	cm := cliniko.NewMetrics(m.reg)
	m.Cliniko, err = cliniko.New(cliniko.Config{
		BaseURL:           m.cfg.Cliniko.BaseURL,
		UserAgent:         m.cfg.Cliniko.UserAgent,
		RequestsPerMinute: m.cfg.Cliniko.RequestsPerMinute,
		Timeout:           m.cfg.Cliniko.Timeout,
	}, cliniko.Budget{Redis: m.rdb, Key: m.Store.ClinikoBudgetKey}, cliniko.WithMetrics(cm), cliniko.WithObserver(jobs.AuditObserver(m.Store, m.log)))
	if err != nil {
		return nil, fmt.Errorf("cliniko: %w", err)
	}
	m.Jobs = jobs.NewClient(m.rdb, m.Store)
	jm := jobs.NewMetrics(m.reg, m.Store)
	if err := m.messaging(); err != nil {
		return nil, err
	}

	if opts.Mode.serves() {
		host, port, _ := net.SplitHostPort(m.cfg.HTTP.Addr)
		m.ln, err = net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, fmt.Errorf("listen on %s (http.addr): %w", m.cfg.HTTP.Addr, err)
		}
		m.url = "http://" + m.ln.Addr().String()
		if opts.Mode == ModeDev {
			// The address is known only now (the port may have been :0).
			_, p, _ := net.SplitHostPort(m.ln.Addr().String())
			m.cfg.PublicURL = "http://localhost:" + p
			m.url = m.cfg.PublicURL
			m.sandbox.SetAppURL(m.cfg.PublicURL)
		}
	}

	if opts.Mode.works() {
		wc := opts.Worker
		wc.Concurrency = m.cfg.Worker.Concurrency
		wc.Dial = m.dial
		h := jobs.NewHandlers(jobs.Deps{
			Store: m.Store, Cliniko: m.Cliniko, Client: m.Jobs, Log: m.log, Metrics: jm,
			AccessURL: m.cfg.PublicURL + "/access", SyncInterval: m.cfg.Sync.Interval, Now: opts.Now,
			Mail: m.mail, SMS: m.sms, Region: m.cfg.Region,
		})
		m.worker = jobs.NewWorker(m.rdb, wc, h.Mux(), h, m.log)
		m.worker.Every(m.cfg.Sync.Interval, jobs.NewSyncTickTask())
		m.worker.Every(jobs.ReconcileInterval, jobs.NewReconcileTask())
	}

	if opts.Mode.serves() {
		var regions []flows.Region
		for _, code := range config.RegionCodes {
			regions = append(regions, flows.Region{Code: code, Name: config.RegionNames[code], URL: m.cfg.RegionURL(code)})
		}
		m.Flows = flows.New(flows.Deps{Store: m.Store, Jobs: m.Jobs, Cliniko: m.Cliniko, Codes: m.Codes, Log: m.log,
			AccessURL: m.cfg.PublicURL + "/access", Now: opts.Now, Region: m.cfg.Region, Regions: regions})
		checks := bridge.Checks{Redis: func(ctx context.Context) error { return m.rdb.Ping(ctx).Err() }}
		if m.worker != nil {
			checks.Workers = m.worker.Ping
		}
		registerReady(m.reg, checks)
		var proxies []netip.Prefix
		for _, p := range m.cfg.HTTP.TrustedProxies {
			pfx, err := config.ParseTrustedProxy(p)
			if err != nil {
				return nil, fmt.Errorf("http.trusted_proxies: %w", err)
			}
			proxies = append(proxies, pfx)
		}
		srv := bridge.New(bridge.Config{
			Region: m.cfg.Region, PublicURL: m.cfg.PublicURL, Hosts: m.cfg.Hosts(), RegionURLs: regions,
			SecureCookies: m.cfg.SecureCookies(), WebhookSecret: m.cfg.Webhooks.Secret, AdminToken: m.cfg.Admin.Token,
			Version: opts.Version, Now: opts.Now, TrustedProxies: proxies, QueuesActions: m.cfg.Admin.QueuesActions, TimeZone: m.cfg.TimeZone(),
		}, bridge.Deps{Flows: m.Flows, Store: m.Store, Jobs: m.Jobs, Keys: keys, Queues: queueMonitor(m.rdb, m.cfg.Admin)}, checks, m.reg, m.log)
		var handler http.Handler = srv
		if opts.Mode == ModeDev {
			handler = m.devOutboxes(srv)
		}
		m.server = &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       90 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		}
	}
	if opts.Mode == ModeDev {
		m.demo, err = seedDemo(ctx, m.Store)
		if err != nil {
			return nil, fmt.Errorf("demo data: %w", err)
		}
	}
	return m, nil
}

// URL is the address the HTTP server listens on ("" without HTTP).
func (m *Main) URL() string { return m.url }

// Config is the effective configuration (dev mode fills some fields in).
func (m *Main) Config() config.Config { return m.cfg }

// Redis is the process's Redis client.
func (m *Main) Redis() redis.UniversalClient { return m.rdb }

// Sandbox is the dev-mode Cliniko sandbox (nil in other modes).
func (m *Main) Sandbox() *sandbox.Sandbox { return m.sandbox }

// Demo is the dev-mode demo data (nil in other modes).
func (m *Main) Demo() *Demo { return m.demo }

// Run starts the workers and the HTTP server and blocks until ctx is done or
// a part fails; then it shuts down gracefully: the listener closes, requests
// in flight finish, running jobs finish or go back to their queue.
func (m *Main) Run(ctx context.Context) error {
	if m.worker != nil {
		if err := m.worker.Start(); err != nil {
			return err
		}
	}
	// Announced before the first request is served (the listener is open
	// already, so nothing is refused meanwhile): whoever waits for the
	// server to answer has the banner complete.
	m.log.Info("pmsbridge started", "mode", m.opts.Mode, "region", m.cfg.Region, "url", m.url, "version", m.opts.Version)
	if m.opts.Mode == ModeDev {
		m.printDevBanner()
	}
	if m.server != nil {
		go func() {
			if err := m.server.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.runErr <- fmt.Errorf("http server: %w", err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
		m.log.Info("shutting down")
	case err = <-m.runErr:
		m.log.Error("stopping after a failure", "err", err)
	}
	m.shutdown()
	return err
}

func (m *Main) shutdown() {
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := m.server.Shutdown(ctx); err != nil {
			m.log.Warn("http shutdown", "err", err)
		}
		cancel()
	}
	if m.worker != nil {
		m.worker.Shutdown()
	}
	m.log.Info("stopped")
}

// Close releases everything New opened. It is safe to call more than once.
func (m *Main) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.ln != nil {
		_ = m.ln.Close()
	}
	if m.rdb != nil {
		_ = m.rdb.Close()
	}
	if m.sandbox != nil {
		m.sandbox.Close()
	}
	if m.devMail != nil {
		_ = m.devMail.Close()
	}
	if m.devSMS != nil {
		m.devSMS.Close()
	}
	if m.mini != nil {
		m.mini.Close()
	}
	return nil
}

// messaging builds the email sender and the SMS client from mail.* and
// sms.* (each nil when not configured: a message by that channel then
// fails with a reason that says so, and Codes does not offer it) and Codes.
func (m *Main) messaging() error {
	if m.cfg.Mail.Configured() {
		mc := mail.Config{SMTPURL: m.cfg.Mail.SMTPURL, From: m.cfg.Mail.From, RootCAs: m.opts.MailRootCAs}
		if m.devMail != nil {
			mc.RootCAs = m.devMail.RootCAs()
		}
		s, err := mail.New(mc)
		if err != nil {
			return fmt.Errorf("mail: %w", err)
		}
		m.mail = s
	}
	if m.cfg.SMS.Configured() {
		c, err := sms.New(sms.Config{AccountSID: m.cfg.SMS.TwilioAccountSID, AuthToken: m.cfg.SMS.TwilioAuthToken,
			From: m.cfg.SMS.From, BaseURL: m.cfg.SMS.TwilioBaseURL})
		if err != nil {
			return fmt.Errorf("sms: %w", err)
		}
		m.sms = c
	}
	m.Codes = jobs.NewCodes(m.Jobs, jobs.CodesConfig{Email: m.mail != nil, SMS: m.sms != nil, Region: m.cfg.Region})
	return nil
}

func keyring(s config.Secrets) (*store.Keyring, error) {
	cur, err := store.ParseKey(s.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("secrets.encryption_key %w", err)
	}
	var prev [][]byte
	for _, p := range s.PreviousEncryptionKeys {
		k, err := store.ParseKey(p)
		if err != nil {
			return nil, fmt.Errorf("secrets.previous_encryption_keys %w", err)
		}
		prev = append(prev, k)
	}
	return store.NewKeyring(cur, prev...)
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var lvl slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

var redisLoggerOnce sync.Once

// setRedisLogger sends go-redis's own messages (reconnects) to the first
// app's logger instead of stderr. go-redis has one logger per process.
func setRedisLogger(l *slog.Logger) {
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLog{l.With("component", "redis")}) })
}

type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
