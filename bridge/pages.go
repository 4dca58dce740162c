package bridge

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"sync"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var (
	pagesOnce sync.Once
	pages     map[string]*template.Template
)

var funcs = template.FuncMap{
	"join": strings.Join,
	// causeInfo is the cause table's row of a cause (words for pages).
	"causeInfo": func(c pmsbridge.Cause) pmsbridge.CauseInfo { return c.Info() },
	"add1":      func(i int) int { return i + 1 },
	// inlineCSS is the stylesheet itself, for pages served where
	// /static/ is not (the wrong-region page answers on any host).
	"inlineCSS": func() template.CSS {
		b, _ := staticFS.ReadFile("static/app.css")
		return template.CSS(b) //nolint:gosec // our own embedded stylesheet
	},
	// roleName is a Cliniko role as people say it: "power_receptionist" →
	// "power receptionist".
	"roleName": func(role string) string { return strings.ReplaceAll(role, "_", " ") },
	// capitalize turns a Cliniko role such as "scheduler" into "Scheduler".
	"capitalize": func(s string) string {
		if s == "" {
			return s
		}
		r := []rune(s)
		return strings.ToUpper(string(r[:1])) + string(r[1:])
	},
}

func loadPages() map[string]*template.Template {
	pagesOnce.Do(func() {
		pages = map[string]*template.Template{}
		layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
		names, _ := fs.Glob(templateFS, "templates/*.html")
		for _, n := range names {
			base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
			if base == "layout" {
				continue
			}
			pages[base] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
		}
	})
	return pages
}

// pageData is what every page template receives.
type pageData struct {
	Title      string
	Region     string
	RegionName string // e.g. "Australia"; "" when unknown
	RequestID  string
	Me         *store.Practitioner
	Data       any
}

// page renders a page with the layout. Rendering goes to a buffer first so
// that a template error becomes a clean 500, not half a page.
func (s *Server) page(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	t, ok := loadPages()[name]
	if !ok {
		s.logger(r.Context()).Error("unknown page", "page", name)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	pd := pageData{Title: title, Region: s.cfg.Region, RegionName: s.regionName(), RequestID: requestID(r.Context()), Me: practitionerFrom(r.Context()), Data: data}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", pd); err != nil {
		s.logger(r.Context()).Error("render page", "page", name, "err", err)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// regionName is the readable name of this deployment's region.
func (s *Server) regionName() string {
	for _, rg := range s.cfg.RegionURLs {
		if rg.Code == s.cfg.Region {
			return rg.Name
		}
	}
	return ""
}

// message is the content of a plain message page.
type message struct {
	Tone       string // ok, info, warn, error
	Heading    string
	Paragraphs []string
	Steps      []string
	Links      []link
	NotYou     bool // offer "not you? log out"
	NotYouNext string
}

type link struct {
	Text, URL string
	Secondary bool
}

func (s *Server) message(w http.ResponseWriter, r *http.Request, status int, title string, m message) {
	s.page(w, r, status, "message", title, m)
}

func (s *Server) renderWrongRegion(w http.ResponseWriter, r *http.Request) {
	s.page(w, r, http.StatusMisdirectedRequest, "wrong_region", "Wrong address", struct {
		Host    string
		Regions []Region
	}{Host: r.Host, Regions: s.cfg.RegionURLs})
}

func (s *Server) forbiddenCrossOrigin(w http.ResponseWriter, r *http.Request) {
	s.message(w, r, http.StatusForbidden, "Request blocked", message{
		Tone:    "error",
		Heading: "This request was blocked",
		Paragraphs: []string{
			"The form was sent from another website, so pmsbridge did not act on it. This protects your account.",
			"Go back to pmsbridge and try again from its own page.",
		},
		Links: []link{{Text: "Go to your patients", URL: "/patients"}},
	})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.message(w, r, http.StatusNotFound, "Not found", message{
		Tone: "warn", Heading: "Page not found",
		Paragraphs: []string{"There is nothing at this address."},
		Links:      []link{{Text: "Go to your patients", URL: "/patients"}},
	})
}
