package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
)

type ctxKey int

const (
	ctxRequestID ctxKey = iota
	ctxPractitioner
	ctxSession
	ctxClinikoUser
	ctxClient
)

// logger is the logger of the request in ctx: the server's, with the
// request's id (see logRequests). Every line logged for a request goes
// through it.
func (s *Server) logger(ctx context.Context) *slog.Logger { return pmsbridge.Logger(ctx, s.log) }

// requestID returns the id of the request in ctx ("" outside a request).
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxRequestID).(string)
	return id
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status and size of a response for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	size   int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.size += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests gives every request an id, recovers panics and logs one line
// per request. Only the path is logged, never the query (it may hold a
// Cliniko patient id, which is an identifier of a person).
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 || strings.ContainsAny(id, " \r\n\t") {
			id = newRequestID()
		}
		w.Header()["X-Request-Id"] = []string{id}
		ctx := pmsbridge.WithLoggerAttrs(context.WithValue(r.Context(), ctxRequestID, id), s.log, "request_id", id)
		sw := &statusWriter{ResponseWriter: w}
		r2 := r.WithContext(ctx)
		defer func() {
			if p := recover(); p != nil {
				s.logger(ctx).ErrorContext(ctx, "panic", "panic", p, "stack", string(debug.Stack()))
				if sw.status == 0 {
					http.Error(sw, "Internal error", http.StatusInternalServerError)
				}
			}
			route := r2.Pattern
			if route == "" {
				route = "unmatched"
			}
			took := time.Since(start)
			s.metrics.httpRequests.WithLabelValues(route, statusClass(sw.status)).Inc()
			s.metrics.httpDuration.WithLabelValues(route).Observe(took.Seconds())
			level := slog.LevelInfo
			if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
				level = slog.LevelDebug
			}
			// The request's own logger (request_id first), without
			// building it: the same line as s.logger(ctx).Log would write.
			s.log.LogAttrs(ctx, level, "http request", slog.String("request_id", id),
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
				slog.Int("bytes", sw.size), slog.Float64("duration_ms", float64(took.Microseconds())/1000),
				slog.String("remote", clientFrom(r2)))
		}()
		next.ServeHTTP(sw, r2)
	})
}

func statusClass(code int) string {
	switch {
	case code == 0:
		return "none"
	case code < 300:
		return "2xx"
	case code < 400:
		return "3xx"
	case code < 500:
		return "4xx"
	default:
		return "5xx"
	}
}

// securityHeaders sets the standard protective headers on every response.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Canonical keys assigned directly: no canonicalising and no new
		// slice per request (a later Add appends to a copy, as each value
		// slice is full).
		for _, kv := range securityHeaderValues {
			h[kv.key] = kv.value
		}
		if s.cfg.SecureCookies {
			h["Strict-Transport-Security"] = hsts
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaderValues are the protective headers of every response.
var securityHeaderValues = []struct {
	key   string
	value []string
}{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Referrer-Policy", []string{"same-origin"}},
	{"Content-Security-Policy", []string{"default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}},
	{"Permissions-Policy", []string{"camera=(), microphone=(), geolocation=()"}},
}

var hsts = []string{"max-age=31536000; includeSubDomains"}

// checkHost answers requests for other hosts with the page listing the
// regional addresses. Health, readiness and metrics answer on any host so
// that load balancers and Prometheus can reach them by IP.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			next.ServeHTTP(w, r)
			return
		}
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		for _, ok := range s.cfg.Hosts {
			if host == ok {
				next.ServeHTTP(w, r)
				return
			}
		}
		s.renderWrongRegion(w, r)
	})
}
