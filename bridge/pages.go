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
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/pdf"
	"github.com/physitrack/pmsbridge/store"
	"github.com/physitrack/pmsbridge/support"
)

//go:embed templates/*.html templates/partials/*.html
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
	// count says "1 job", "3 jobs".
	"count": pmsbridge.Count,
	// idHead and idTail split a job id for showing it cut short in the
	// middle (CSS), whole on hover and when copied.
	"idHead": func(id string) string { h, _ := support.IDParts(id); return h },
	"idTail": func(id string) string { _, t := support.IDParts(id); return t },
	// supportOf is support's words for a cause code (a job's, a string).
	"supportOf": func(c string) pmsbridge.Support { return pmsbridge.Cause(c).Info().Support },
	// eventText is one event of a job's history in words.
	"eventText": support.EventText,
	// inlineCSS is the stylesheet itself, for pages served where
	// /static/ is not (the wrong-region page answers on any host).
	"inlineCSS": func() template.CSS {
		b, _ := staticFS.ReadFile("static/app.css")
		return template.CSS(b) //nolint:gosec // our own embedded stylesheet
	},
	// roleName is a Cliniko role as people say it: "power_receptionist" →
	// "power receptionist".
	"roleName": roleName,
	// capitalize turns a Cliniko role such as "scheduler" into "Scheduler".
	"capitalize": capitalize,
	// assignData is the assign form's data (outlook.go).
	"assignData": assignData,
	// pdfData carries a PDF state with the clinic's time it is shown in.
	"pdfData": func(st store.PDFState, clock pmsbridge.ClinicTime) pdfView { return pdfView{State: st, Clock: clock} },
	// dosage says an exercise's dose as the PDF does.
	"dosage": pdf.Dosage,
}

// roleName is a Cliniko role as people say it: "power_receptionist" →
// "power receptionist".
func roleName(role string) string { return strings.ReplaceAll(role, "_", " ") }

// capitalize upper-cases the first letter.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	return strings.ToUpper(string(r[:1])) + string(r[1:])
}

// loadPages parses every page of templates/ with the layout and the
// partials of templates/partials/ (templates used by several pages:
// code_delivery, code_notice).
func loadPages() map[string]*template.Template {
	pagesOnce.Do(func() {
		pages = map[string]*template.Template{}
		layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials/*.html"))
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

// rowView is a programme row with what it is shown with.
type rowView struct {
	PatientID string
	Clock     pmsbridge.ClinicTime
	Row       flows.ProgrammeRow
	View      *flows.PatientView
	// CodeDelivery is the row's part about the programme's code reaching
	// the patient (template "code_delivery").
	CodeDelivery deliveryRow
}

// pdfView is a PDF state with the clinic's time.
type pdfView struct {
	State store.PDFState
	Clock pmsbridge.ClinicTime
}

// pageData is what every page template receives.
type pageData struct {
	Title      string
	Region     string
	RegionName string // e.g. "Australia"; "" when unknown
	RequestID  string
	Me         *store.Practitioner
	// Clock is the clinic's time, in which every time and date on the page
	// is shown: the logged-in practitioner's clinic's, or on a patient's
	// page the programme's clinic's (UTC when there is neither).
	Clock pmsbridge.ClinicTime
	// ForPatients marks a page for patients: it carries their clinic's
	// name (Clinic, "" when unknown), not ours.
	ForPatients bool
	Clinic      string
	Data        any
}

// forPatients is page data of a page for patients: the clinic it is from
// (its name and time; the zero values when unknown).
type forPatients interface {
	clinic() (name string, clock pmsbridge.ClinicTime)
}

// clocked is page data that carries its clinic's time, read already (the
// patient page's, by flows.PatientView), so that the page does not read
// the subscription again.
type clocked interface {
	clinicClock() pmsbridge.ClinicTime
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
	if fp, ok := data.(forPatients); ok {
		pd.ForPatients, pd.Me = true, nil
		pd.Clinic, pd.Clock = fp.clinic()
	} else if c, ok := data.(clocked); ok {
		pd.Clock = c.clinicClock()
	} else if pd.Me != nil {
		pd.Clock = s.clinicTime(r)
	}
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

// clinicTime is the logged-in practitioner's clinic's time (UTC when it
// cannot be read).
func (s *Server) clinicTime(r *http.Request) pmsbridge.ClinicTime {
	pr := practitionerFrom(r.Context())
	if pr == nil {
		return pmsbridge.ClinicTime{}
	}
	sub, err := s.deps.Store.GetSubscription(r.Context(), pr.SubscriptionID)
	if err != nil {
		s.logger(r.Context()).Warn("read subscription for its time zone", "err", err)
		return pmsbridge.ClinicTime{}
	}
	return sub.ClinicTime()
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
