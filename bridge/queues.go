package bridge

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
)

// QueuesPath is where the queue monitor (asynqmon, Deps.Queues) is
// mounted, behind the support login.
const QueuesPath = "/admin/queues"

// queuesRoutes mounts the queue monitor under QueuesPath/ behind the admin
// login (the support session cookie, or the bearer token). Without
// Config.QueuesActions only GET and HEAD reach it: a request that would
// change a task or a queue is refused here, whatever asynqmon's own
// read-only mode does with it.
func (s *Server) queuesRoutes(mux *http.ServeMux) {
	h := s.deps.Queues
	if h == nil {
		mux.HandleFunc(QueuesPath+"/", s.adminPageAuth(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "The queue monitor is not available in this process.", http.StatusNotFound)
		}))
		return
	}
	csp := queuesCSP(h)
	mux.HandleFunc(QueuesPath+"/", s.adminPageAuth(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.QueuesActions && r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the queue monitor is read-only: set admin.queues_actions to let it act on tasks"})
			return
		}
		w.Header().Set("Content-Security-Policy", csp)
		if strings.HasPrefix(r.URL.Path, QueuesPath+"/static/") {
			w.Header().Set("Cache-Control", "private, max-age=3600")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	}))
}

// inlineScript finds a page's inline scripts.
var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// queuesCSP is the Content-Security-Policy of the queue monitor: the rest
// of the site's, with asynqmon's own inline scripts allowed by their
// hashes (its page sets its settings and loads its bundles inline), taken
// from the page it serves. Its web fonts (on Google's servers) stay
// blocked: the page falls back to the browser's fonts.
func queuesCSP(h http.Handler) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, QueuesPath+"/", nil))
	var hashes []string
	for _, m := range inlineScript.FindAllStringSubmatch(rec.Body.String(), -1) {
		sum := sha256.Sum256([]byte(m[1]))
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	return "default-src 'none'; script-src 'self' " + strings.Join(hashes, " ") +
		"; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}
