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

	"github.com/physitrack/pmsbridge/flows"
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
	// TimeZone is the region's default clinic time zone (IANA): patients'
	// pages that know no clinic show times in it.
	TimeZone string
	// TrustedProxies are the reverse proxies in front (http.trusted_proxies):
	// only from these peers is X-Forwarded-For believed. Empty: the client
	// is the connection's peer.
	TrustedProxies []netip.Prefix
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Region is one regional deployment, for the page that lists them (the
// flows' own: they name the region a clinic belongs in).
type Region = flows.Region

// Checks are the readiness checks of the process.
type Checks struct {
	// Redis pings Redis.
	Redis func(ctx context.Context) error
	// Workers reports whether this process's workers are up (nil in a
	// serve-only process).
	Workers func(ctx context.Context) error
}

// Readiness is the outcome of the checks: each part as "ok" or what is
// wrong with it ("redis": "unreachable", "workers": "down").
type Readiness struct {
	Ready bool
	Parts map[string]string
}

// readyTimeout bounds one round of the checks.
const readyTimeout = 2 * time.Second

// Ready runs the checks: what /readyz answers and the pmsbridge_ready
// gauge reports. Redis must answer, and this process's workers (if any)
// be up.
func (c Checks) Ready(ctx context.Context) Readiness {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	res := Readiness{Ready: true, Parts: map[string]string{"redis": "ok"}}
	if err := c.Redis(ctx); err != nil {
		res.Ready, res.Parts["redis"] = false, "unreachable"
	}
	if c.Workers != nil {
		res.Parts["workers"] = "ok"
		if err := c.Workers(ctx); err != nil {
			res.Ready, res.Parts["workers"] = false, "down"
		}
	}
	return res
}

// Server is the HTTP handler of pmsbridge.
type Server struct {
	cfg     Config
	deps    Deps
	flows   *flows.Flows
	log     *slog.Logger
	checks  Checks
	reg     *prometheus.Registry
	metrics *metrics
	handler http.Handler
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, deps: deps, flows: deps.Flows, log: log, checks: checks, reg: reg, metrics: newMetrics(reg)}
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
	s.handler = s.middleware(csrf.Handler(mux))
	return s
}

// middleware is what every request passes before its route: the client
// address, the request's id, log line and metrics, the security headers,
// the host check and the body caps.
func (s *Server) middleware(h http.Handler) http.Handler {
	return s.withClient(s.logRequests(s.securityHeaders(s.checkHost(s.limitBodies(h)))))
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := s.checks.Ready(r.Context())
	res := map[string]string{"status": "ready"}
	for k, v := range rd.Parts {
		res[k] = v
	}
	status := http.StatusOK
	if !rd.Ready {
		res["status"], status = "not ready", http.StatusServiceUnavailable
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
