// Package bridge is pmsbridge's HTTP side: the Cliniko "Open in" receiver,
// the practitioner pages, the programme webhook, patient access, the admin
// pages and API, and health, readiness and metrics. Pages are html/template
// files embedded in the binary, with no external assets.
package bridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is what the HTTP side needs to know about the deployment.
type Config struct {
	Region        string
	PublicURL     string   // e.g. https://au.physitrack.com
	Hosts         []string // host names answered for (lower case, no port)
	RegionURLs    []Region // every region's public address, for the wrong-host page
	SecureCookies bool
	WebhookSecret string
	AdminToken    string
	// QueuesActions lets the queue monitor act on tasks
	// (admin.queues_actions); false: it only shows them.
	QueuesActions bool
	Version       string
	// TrustedProxies are the reverse proxies in front (http.trusted_proxies):
	// only from these peers is X-Forwarded-For believed. Empty: the client
	// is the connection's peer.
	TrustedProxies []netip.Prefix
	// ImportWait is how long the receiver waits for a new patient's import
	// before showing the waiting page. Default 2s.
	ImportWait time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Region is one regional deployment, for the page that lists them.
type Region struct {
	Code, Name, URL string
}

// Checks are the readiness checks of the process.
type Checks struct {
	// Redis pings Redis.
	Redis func(ctx context.Context) error
	// Workers reports whether this process's workers are up (nil in a
	// serve-only process).
	Workers func(ctx context.Context) error
}

// Server is the HTTP handler of pmsbridge.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	checks  Checks
	reg     *prometheus.Registry
	metrics *metrics
	handler http.Handler
	// refreshSlots bounds the background refresh enqueues of clicks.
	refreshSlots chan struct{}
}

type metrics struct {
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	clickLatency *prometheus.HistogramVec
	// attempts counts secret checks: what a lock-out let through (ok,
	// wrong) and what it stopped unchecked (locked, busy).
	attempts *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pmsbridge_http_requests_total", Help: "HTTP requests by route and status class.",
		}, []string{"route", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pmsbridge_http_request_duration_seconds", Help: "HTTP request duration by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		clickLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pmsbridge_click_to_patient_seconds", Help: "Time from a Cliniko button click to the patient page redirect, by path (linked, imported, waited).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10},
		}, []string{"path"}),
	}
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pmsbridge_auth_attempts_total",
		Help: "Logins and programme openings by kind (login, access, admin) and outcome: ok and wrong were checked; locked (a lock-out) and busy (too many password checks at once) were refused without checking.",
	}, []string{"kind", "outcome"})
	reg.MustRegister(m.httpRequests, m.httpDuration, m.clickLatency, m.attempts)
	return m
}

// New builds the server. reg is the process's Prometheus registry; /metrics
// serves it.
func New(cfg Config, deps Deps, checks Checks, reg *prometheus.Registry, log *slog.Logger) *Server {
	if cfg.ImportWait == 0 {
		cfg.ImportWait = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, deps: deps, log: log, checks: checks, reg: reg, metrics: newMetrics(reg), refreshSlots: make(chan struct{}, 64)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.routes(mux)
	csrf := http.NewCrossOriginProtection()
	// The webhook and the admin API are called by programs with their own
	// authentication (HMAC, bearer token), not by browsers with cookies.
	csrf.AddInsecureBypassPattern("POST /webhooks/programmes")
	csrf.AddInsecureBypassPattern("/admin/api/")
	csrf.SetDenyHandler(http.HandlerFunc(s.forbiddenCrossOrigin))
	s.handler = s.withClient(s.logRequests(s.securityHeaders(s.checkHost(s.limitBodies(csrf.Handler(mux))))))
	return s
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	res := map[string]string{}
	status := http.StatusOK
	if err := s.checks.Redis(ctx); err != nil {
		res["redis"] = "unreachable"
		status = http.StatusServiceUnavailable
	} else {
		res["redis"] = "ok"
	}
	if s.checks.Workers != nil {
		if err := s.checks.Workers(ctx); err != nil {
			res["workers"] = "down"
			status = http.StatusServiceUnavailable
		} else {
			res["workers"] = "ok"
		}
	}
	if status == http.StatusOK {
		res["status"] = "ready"
	} else {
		res["status"] = "not ready"
	}
	writeJSON(w, status, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}
