package bridge

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/store"
)

// patientPageData is what the patient page shows: the flow's view of the
// patient, the assign form (empty, pre-filled for a new version, or as
// typed when it was refused), and the notice of what was just done.
type patientPageData struct {
	flows.PatientView
	Form       assignFormView
	Notice     string
	NoticeTone string // ok, info, warn
	Error      string
	// CodeNotice says, after an assignment, what happens to the code.
	CodeNotice *codeNotice
	// codes are what the programmes' rows show of their codes, by
	// programme id.
	codes map[string]*codeDelivery
}

// clinicClock is the clinic's time the view was read with (clocked).
func (d patientPageData) clinicClock() pmsbridge.ClinicTime { return d.Clock }

// Row is a programme row with what it is shown with: the patient's id, the
// clinic's time and its code's delivery.
func (d patientPageData) Row(row flows.ProgrammeRow) rowView {
	c := row.Current
	return rowView{PatientID: d.Patient.ID, Clock: d.Clock, Row: row, View: &d.PatientView,
		CodeDelivery: deliveryRow{ID: c.ID, PatientID: d.Patient.ID, Code: c.Code, Delivery: d.codes[c.ID]}}
}

// patientNotice is the patient page's notice for the done key of its
// address (and what goes with it), chosen from fixed texts: nothing from
// the address is shown as our own words.
func patientNotice(q url.Values, v flows.PatientView) (text, tone string) {
	switch q.Get("done") {
	case "shared":
		return "The patient is now shared.", "ok"
	case "unshared":
		return "The patient is no longer shared with that colleague.", "ok"
	case "transferred":
		return "The patient now belongs to your colleague.", "ok"
	case "year":
		return "The year of birth is saved.", "ok"
	case "cliniko":
		return "The year of birth now comes from Cliniko again.", "ok"
	case "code_email", "code_sms":
		return codeSentNotices[q.Get("done")], "ok"
	case "resent":
		return "The PDF is being sent to Cliniko again. Its row below shows when it is there.", "ok"
	case "unlocked":
		return "The programme is unlocked: the patient can enter their code and year of birth again now.", "ok"
	case "assigned":
		return assignedNotice(q.Get("pdf"), v)
	case "refreshed":
		return refreshedNotice(q.Get("changed"), v), "ok"
	case "refresh-archived":
		return "pmsbridge asked Cliniko just now: Cliniko no longer shows this patient (archived or deleted there). Their details here are kept.", "warn"
	case "refreshing":
		return "Cliniko has not answered yet; pmsbridge keeps trying by itself. The details below are from the last time they were read: reload the page in a minute to see the new ones.", "info"
	case "refresh-failed":
		if c := pmsbridge.Cause(q.Get("cause")); c.Valid() {
			t := c.Info().Clinician.Text
			return "The details could not be read from Cliniko. " + t.Heading + ". " + strings.Join(t.Steps, " "), "warn"
		}
		return "The details could not be read from Cliniko.", "warn"
	}
	return "", ""
}

// refreshChanges are the words of what a refresh changed, by the token in
// the address.
var refreshChanges = []struct{ token, words string }{
	{"name", "name"}, {"email", "email address"}, {"mobile", "mobile number"}, {"year", "year of birth"},
}

// refreshedNotice says what a refresh changed, at the time the details
// were read (in the clinic's time).
func refreshedNotice(changed string, v flows.PatientView) string {
	var words []string
	for _, c := range refreshChanges {
		for _, t := range strings.Split(changed, ".") {
			if t == c.token {
				words = append(words, c.words)
			}
		}
	}
	at := "just now"
	if l := v.Patient.Link; l != nil && !l.LastSyncedAt.IsZero() {
		at = "at " + v.Clock.Time(l.LastSyncedAt)
	}
	if len(words) == 0 {
		return "Read from Cliniko " + at + ": nothing has changed."
	}
	return "Read from Cliniko " + at + ". Updated: " + joinWords(words) + "."
}

// joinWords joins words as a sentence does: "a", "a and b", "a, b and c".
func joinWords(ws []string) string {
	switch len(ws) {
	case 0:
		return ""
	case 1:
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " and " + ws[len(ws)-1]
}

func (s *Server) patientPage(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	d, err := s.patientPageData(r, p)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	d.Notice, d.NoticeTone = patientNotice(r.URL.Query(), d.PatientView)
	if r.URL.Query().Get("done") == "assigned" {
		d.CodeNotice = d.assignedCodeNotice(r.URL.Query().Get("programme"), s.cfg.PublicURL+"/access")
	}
	if id := r.URL.Query().Get("version_of"); id != "" {
		d.Form = s.newVersionForm(d.PatientView, id)
	}
	d.Form.Today = d.Clock.Date(s.cfg.Now())
	s.page(w, r, http.StatusOK, "patient", p.Name(), d)
}

// patientPageData reads the page's view of patient p, with an empty assign
// form.
func (s *Server) patientPageData(r *http.Request, p store.Patient) (patientPageData, error) {
	v, err := s.flows.PatientView(r.Context(), *practitionerFrom(r.Context()), p)
	if err != nil {
		return patientPageData{}, err
	}
	codes, err := s.codesOf(r.Context(), v)
	if err != nil {
		return patientPageData{}, err
	}
	return patientPageData{PatientView: v, Form: s.emptyAssignForm(v), codes: codes}, nil
}

// patientError answers a form post about patient p that failed with err:
// a refusal the practitioner can act on shows on the patient's page, with
// its status (answerFor), and the assign form as it was typed (form; nil
// for the other forms); anything else is Error's.
func (s *Server) patientError(w http.ResponseWriter, r *http.Request, p store.Patient, err error, form *flows.Assignment) {
	var refusal *flows.Error
	if !errors.As(err, &refusal) || refusal.Code == flows.NotFound {
		s.Error(w, r, err)
		return
	}
	d, verr := s.patientPageData(r, p)
	if verr != nil {
		s.Error(w, r, verr)
		return
	}
	d.Error = refusal.Message
	a := answerFor(err)
	s.retryAfter(w, a)
	if form != nil {
		d.Form = typedAssignForm(d.PatientView, *form)
		d.Form.Error = refusal.Message
		d.Error = ""
	}
	d.Form.Today = d.Clock.Date(s.cfg.Now())
	s.page(w, r, a.status, "patient", p.Name(), d)
}

// refresh is POST /patients/{id}/refresh: read the details from Cliniko
// again, waiting briefly so the page can say what happened.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	p, ok := s.loadPatient(w, r)
	if !ok {
		return
	}
	hasKey := clinikoUserFrom(r.Context()) != nil
	got, err := s.flows.Refresh(r.Context(), *practitionerFrom(r.Context()), hasKey, p)
	if err != nil {
		s.patientError(w, r, p, err, nil)
		return
	}
	target := "/patients/" + p.ID + "?done="
	switch {
	case got.Done && got.Archived:
		target += "refresh-archived"
	case got.Done:
		var tokens []string
		for _, c := range refreshChanges {
			for _, what := range got.Changed {
				if what == c.words {
					tokens = append(tokens, c.token)
				}
			}
		}
		target += "refreshed&changed=" + strings.Join(tokens, ".")
	case got.Failed:
		target += "refresh-failed&cause=" + url.QueryEscape(string(got.Cause))
	default:
		target += "refreshing"
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
