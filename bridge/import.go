package bridge

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/flows"
)

// clinikoPatientID validates the untrusted patient_id of a Cliniko button
// click: present once, digits only, fits a positive int64.
func clinikoPatientID(q url.Values) (string, string) {
	vals, ok := q["patient_id"]
	switch {
	case !ok || len(vals) == 0 || vals[0] == "":
		return "", "The link has no patient number (patient_id)."
	case len(vals) > 1:
		return "", "The link has more than one patient number."
	}
	v := vals[0]
	if len(v) > 19 {
		return "", "The patient number in the link is too long."
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return "", "The patient number in the link is not a number."
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return "", "The patient number in the link is not a valid Cliniko patient number."
	}
	return strconv.FormatInt(n, 10), ""
}

// clinikoImport is the Cliniko "Open in" button: GET
// /cliniko_patient_import?patient_id=N (check=1: the waiting page looks how
// it went).
func (s *Server) clinikoImport(w http.ResponseWriter, r *http.Request) {
	start := time.Now() // the latency metric measures real time
	cid, problem := clinikoPatientID(r.URL.Query())
	if problem != "" {
		s.message(w, r, http.StatusBadRequest, "Link not valid", message{Tone: "error", Heading: "This link from Cliniko is not valid",
			Paragraphs: []string{problem, "Open the patient in Cliniko and click \"Open in pmsbridge\" again. If this keeps happening, ask your Cliniko administrator to check the app's address in Cliniko's settings: it must end in /cliniko_patient_import."},
			Links:      []link{{Text: "Go to your patients", URL: "/patients"}}})
		return
	}
	here := importPath(cid)
	pr := practitionerFrom(r.Context())
	if pr == nil {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(here), http.StatusSeeOther)
		return
	}
	o, err := s.flows.Open(r.Context(), flows.Click{Practitioner: *pr, ClinikoUser: clinikoUserFrom(r.Context()),
		ClinikoPatientID: cid, Check: r.URL.Query().Get("check") != ""})
	if err != nil {
		s.Error(w, r, resumeAt(err, here))
		return
	}
	switch o.State {
	case pmsbridge.ImportDone:
		path := "linked"
		if o.Imported {
			path = "imported"
		}
		s.metrics.clickLatency.WithLabelValues(path).Observe(time.Since(start).Seconds())
		http.Redirect(w, r, "/patients/"+o.PatientID, http.StatusSeeOther)
	case pmsbridge.ImportNone:
		// Only with check=1 and no import on record: start one.
		http.Redirect(w, r, here, http.StatusSeeOther)
	default:
		s.page(w, r, http.StatusAccepted, "importing", "Opening patient", importingData{
			PatientID: cid, Waiting: o.Cause.Info().Clinician.Waiting, WaitingJSON: waitingJSON, Here: here,
		})
	}
}

// importPath is the receiver's address for Cliniko patient cid.
func importPath(cid string) string { return "/cliniko_patient_import?patient_id=" + cid }

type importingData struct {
	PatientID string
	// Waiting is what the page says while the import is retried with a
	// cause that has waiting words (Cliniko busy); nil: the import is simply
	// running.
	Waiting *pmsbridge.Text
	// WaitingJSON maps every cause with waiting words to them, for the
	// page's script to switch to when the status route names the cause.
	WaitingJSON string
	Here        string
}

// waitingJSON is importingData.WaitingJSON: {"cause":{"heading","explain"}}.
var waitingJSON = func() string {
	type words struct {
		Heading string `json:"heading"`
		Explain string `json:"explain"`
	}
	m := map[pmsbridge.Cause]words{}
	for _, c := range pmsbridge.Causes {
		if w := c.Info().Clinician.Waiting; w != nil {
			m[c] = words{w.Heading, strings.Join(w.Explain, " ")}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // strings only
	}
	return string(b)
}()

// importStatusJSON is the JSON of /imports/status. Every field of the
// contract is always there ("" when it has no value).
type importStatusJSON struct {
	State      pmsbridge.ImportState `json:"state"`
	PatientURL string                `json:"patient_url"`
	Cause      pmsbridge.Cause       `json:"cause"`
	Message    string                `json:"message"`
}

// importStatus is GET /imports/status?patient_id=N, which the waiting page
// follows.
func (s *Server) importStatus(w http.ResponseWriter, r *http.Request) {
	cid, problem := clinikoPatientID(r.URL.Query())
	if problem != "" {
		s.errorJSON(w, r, &badRequest{problem})
		return
	}
	st, err := s.flows.ImportStatus(r.Context(), *practitionerFrom(r.Context()), clinikoUserFrom(r.Context()), cid)
	if err != nil {
		s.errorJSON(w, r, err)
		return
	}
	out := importStatusJSON{State: st.State, Cause: st.Cause, Message: st.Message}
	switch {
	case st.State != pmsbridge.ImportDone:
	case st.Visible:
		out.PatientURL = "/patients/" + st.PatientID
	default:
		// Name our patient only to someone who may open it; others are sent
		// back through the receiver, which explains whose patient it is.
		out.PatientURL = importPath(cid) + "&check=1"
	}
	writeJSON(w, http.StatusOK, out)
}
