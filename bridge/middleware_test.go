package bridge

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkMiddleware: what the middleware every request passes costs a
// linked click (a 303 to the patient page), against the same redirect
// with no middleware. The log line is formatted as in production (JSON),
// into io.Discard.
func BenchmarkMiddleware(b *testing.B) {
	s := &Server{cfg: Config{Hosts: []string{"example.com"}, SecureCookies: true},
		log: slog.New(slog.NewJSONHandler(io.Discard, nil)), metrics: newMetrics(prometheus.NewRegistry())}
	click := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/patients/pat_0123456789abcdefghijklmn", http.StatusSeeOther)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /cliniko_patient_import", click)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", click}, {"middleware", s.middleware(http.NewCrossOriginProtection().Handler(mux))}} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "http://example.com/cliniko_patient_import?patient_id=1001", nil)
			r.RemoteAddr = "192.0.2.10:51234"
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, r)
				if w.Code != http.StatusSeeOther {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// TestRequestLogLine: the one line a request logs names the request's id
// first, as a line of its own logger does, and the route's status and path
// (never the query, which may hold a Cliniko patient id).
func TestRequestLogLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := &Server{cfg: Config{Hosts: []string{"example.com"}},
		log: slog.New(slog.NewJSONHandler(&buf, nil)), metrics: newMetrics(prometheus.NewRegistry())}
	h := s.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.logger(r.Context()).Warn("inside")
		http.Redirect(w, r, "/patients/pat_1", http.StatusSeeOther)
	}))
	r := httptest.NewRequest(http.MethodGet, "http://example.com/cliniko_patient_import?patient_id=1001", nil)
	r.Header.Set("X-Request-Id", "req-7")
	r.RemoteAddr = "192.0.2.10:51234"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if got := w.Header().Get("X-Request-Id"); got != "req-7" {
		t.Errorf("X-Request-Id %q, want req-7", got)
	}
	if got := w.Header().Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q, want DENY", got)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], `"msg":"inside","request_id":"req-7"`) {
		t.Errorf("the handler's line %s lacks the request's id", lines[0])
	}
	for _, want := range []string{`"msg":"http request","request_id":"req-7"`, `"method":"GET"`, `"path":"/cliniko_patient_import"`, `"status":303`, `"remote":"192.0.2.10"`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("the request's line %s lacks %s", lines[1], want)
		}
	}
	if strings.Contains(buf.String(), "1001") {
		t.Errorf("the log holds the query: %s", buf.String())
	}
}
