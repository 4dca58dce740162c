package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
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
// /cliniko_patient_import?patient_id=N.
func (s *Server) clinikoImport(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cid, problem := clinikoPatientID(r.URL.Query())
	if problem != "" {
		s.message(w, r, http.StatusBadRequest, "Link not valid", message{Tone: "error", Heading: "This link from Cliniko is not valid",
			Paragraphs: []string{problem, "Open the patient in Cliniko and click \"Open in pmsbridge\" again. If this keeps happening, ask your Cliniko administrator to check the app's address in Cliniko's settings: it must end in /cliniko_patient_import."},
			Links:      []link{{Text: "Go to your patients", URL: "/patients"}}})
		return
	}
	pr := practitionerFrom(r.Context())
	here := "/cliniko_patient_import?patient_id=" + cid
	if pr == nil {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(here), http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	cu := clinikoUserFrom(ctx)
	if cu == nil {
		http.Redirect(w, r, "/settings/cliniko?need=key&next="+url.QueryEscape(here), http.StatusSeeOther)
		return
	}
	patientID, err := s.deps.Store.FindLink(ctx, pr.SubscriptionID, cu.Shard, cid)
	if err == nil {
		s.openLinked(w, r, pr, patientID, "linked", start)
		return
	}
	if !errors.Is(err, store.ErrNotFound) {
		s.internalError(w, r, err)
		return
	}
	payload := jobs.ImportPayload{PractitionerID: pr.ID, SubscriptionID: pr.SubscriptionID, Shard: cu.Shard, ClinikoPatientID: cid}
	taskID := jobs.ImportTaskID(pr.SubscriptionID, cu.Shard, cid)
	if r.URL.Query().Get("check") == "" {
		// A real click: (re-)run the import. A repeat click joins the
		// running one; a click after a failure runs it again. The wait is
		// recorded first, so that the reconciler queues the import again if
		// a Redis failover loses its task.
		if err := s.deps.Store.AwaitImport(ctx, store.ImportWait{PractitionerID: pr.ID, SubscriptionID: pr.SubscriptionID,
			Shard: cu.Shard, ClinikoPatientID: cid}, jobs.ImportWaitTTL); err != nil {
			s.log.WarnContext(ctx, "record import wait", "err", err)
		}
		if taskID, err = s.deps.Jobs.EnqueueImport(ctx, payload); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	st := s.waitForImport(ctx, pr, cu.Shard, cid, taskID, s.cfg.ImportWait)
	switch st.State {
	case pmsbridge.ImportDone:
		s.openLinked(w, r, pr, st.patientID, "imported", start)
	case pmsbridge.ImportFailed:
		if st.Cause == pmsbridge.CauseNoClinikoKey {
			http.Redirect(w, r, "/settings/cliniko?need=key&next="+url.QueryEscape(here), http.StatusSeeOther)
			return
		}
		// For a cause that is retried by itself (Cliniko down) the retries
		// ran out: the page offers to try again.
		s.causeError(w, r, st.Cause, st.Message, here)
	case pmsbridge.ImportNone:
		// Only with check=1 and no import on record: start one.
		http.Redirect(w, r, here, http.StatusSeeOther)
	default:
		s.page(w, r, http.StatusAccepted, "importing", "Opening patient", importingData{
			PatientID: cid, Status: st, Waiting: st.Cause.Info().Clinician.Waiting, WaitingJSON: waitingJSON, Here: here,
		})
	}
}

type importingData struct {
	PatientID string
	Status    importState
	// Waiting is what the page says while the import is retried with
	// Status.Cause (Cliniko busy); nil: the import is simply running.
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

// openLinked sends the practitioner to a linked patient they may open, or
// explains whose patient it is.
func (s *Server) openLinked(w http.ResponseWriter, r *http.Request, pr *store.Practitioner, patientID, path string, start time.Time) {
	ctx := r.Context()
	patient, err := s.deps.Store.GetPatient(ctx, patientID)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	// The owner needs no further look-up: pr was read (and found active) at
	// the start of this request. Anyone else goes through the sharing rules.
	if patient.OwnerID != pr.ID {
		acc, err := s.deps.Store.CanOpen(ctx, *pr, patient)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if !acc.Allowed {
			s.notShared(w, r, acc)
			return
		}
	}
	if path == "linked" {
		// Keep the details fresh: at most one refresh per patient per few
		// minutes, queued in the background so the click does not wait.
		// At most refreshSlots at once: when Redis is slow, skipping a
		// refresh (the next click or the periodic sync catches up) beats
		// piling up goroutines.
		select {
		case s.refreshSlots <- struct{}{}:
			go func(ctx context.Context, p jobs.RefreshPayload) {
				defer func() { <-s.refreshSlots }()
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if _, err := s.deps.Jobs.EnqueueRefresh(ctx, p, false); err != nil {
					s.log.WarnContext(ctx, "queue refresh", "err", err)
				}
			}(context.WithoutCancel(ctx), jobs.RefreshPayload{PractitionerID: pr.ID, PatientID: patient.ID})
		default:
		}
	}
	s.metrics.clickLatency.WithLabelValues(path).Observe(time.Since(start).Seconds())
	http.Redirect(w, r, "/patients/"+patient.ID, http.StatusSeeOther)
}

// notShared is the 404 page for a patient owned by a colleague who does not
// share it.
func (s *Server) notShared(w http.ResponseWriter, r *http.Request, acc store.Access) {
	owner := acc.OwnerName
	if owner == "" {
		owner = "a colleague"
	}
	s.message(w, r, http.StatusNotFound, "Patient owned by a colleague", message{Tone: "warn",
		Heading: "This patient belongs to " + owner,
		Paragraphs: []string{
			owner + " owns this patient in pmsbridge and has not shared them with you, so you cannot open them.",
			"To get access, ask " + owner + " to do one of these on the patient's page in pmsbridge:",
		},
		Steps: []string{
			"Share the patient with you: you can then open them, and " + owner + " stays the owner.",
			"Transfer the patient to you: you become the owner.",
			"Or ask your clinic's pmsbridge administrator to put you both in the clinic's patient-sharing group.",
		},
		Links:  []link{{Text: "Go to your patients", URL: "/patients"}},
		NotYou: true, NotYouNext: r.URL.RequestURI(),
	})
}

// importState is the JSON of /imports/status. Every field of the contract
// is always there ("" when it has no value).
type importState struct {
	State      pmsbridge.ImportState `json:"state"`
	PatientURL string                `json:"patient_url"`
	Cause      pmsbridge.Cause       `json:"cause"`
	Message    string                `json:"message"`
	patientID  string
}

// importStateOf works out where an import stands: linked (done), failed
// for good (with the ledger's cause and reason), or still going (with the
// cause of the last failed attempt, e.g. Cliniko busy).
func (s *Server) importStateOf(ctx context.Context, pr *store.Practitioner, shard, cid, taskID string) (importState, error) {
	id, err := s.deps.Store.FindLink(ctx, pr.SubscriptionID, shard, cid)
	if err == nil {
		return importState{State: pmsbridge.ImportDone, PatientURL: "/patients/" + id, patientID: id}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return importState{}, err
	}
	state, info, err := s.deps.Jobs.TaskState(ctx, jobs.QueueImport, taskID)
	if err != nil {
		return importState{}, err
	}
	switch state {
	case jobs.StateNone:
		return importState{State: pmsbridge.ImportNone}, nil
	case jobs.StateFailed, jobs.StateRetrying:
		st := importState{State: pmsbridge.ImportPending}
		if state == jobs.StateFailed {
			st.State = pmsbridge.ImportFailed
		}
		if f, err := s.deps.Store.GetFailure(ctx, taskID); err == nil {
			st.Cause, st.Message = f.Cause, f.Reason
		} else if state == jobs.StateFailed {
			st.Cause, st.Message = pmsbridge.CauseInternal, "The import failed."
			if info != nil {
				s.log.WarnContext(ctx, "import failed without a ledger entry", "task_id", taskID)
			}
		}
		return st, nil
	case jobs.StateDone:
		// Completed but no link: the link was made for another id form
		// (cannot happen) or removed since. Treat as pending; a new click
		// re-imports.
		return importState{State: pmsbridge.ImportPending}, nil
	default:
		// Queued or running. If an earlier attempt failed because Cliniko
		// was busy, say so while the retry runs, so that the waiting page
		// does not flip back to "opening" on every attempt.
		st := importState{State: pmsbridge.ImportPending}
		if f, err := s.deps.Store.GetFailure(ctx, taskID); err == nil && f.Cause.Info().Clinician.Waiting != nil {
			st.Cause, st.Message = f.Cause, f.Reason
		}
		return st, nil
	}
}

// waitForImport polls (cheaply: one Redis round trip per look at the link)
// until the import is done or failed, or wait has passed.
func (s *Server) waitForImport(ctx context.Context, pr *store.Practitioner, shard, cid, taskID string, wait time.Duration) importState {
	deadline := time.Now().Add(wait)
	lastTask := time.Time{}
	for {
		id, err := s.deps.Store.FindLink(ctx, pr.SubscriptionID, shard, cid)
		if err == nil {
			return importState{State: pmsbridge.ImportDone, PatientURL: "/patients/" + id, patientID: id}
		}
		if time.Since(lastTask) > 150*time.Millisecond || time.Now().After(deadline) {
			lastTask = time.Now()
			st, err := s.importStateOf(ctx, pr, shard, cid, taskID)
			if err == nil && (st.State == pmsbridge.ImportDone || st.State == pmsbridge.ImportFailed || st.State == pmsbridge.ImportNone) {
				return st
			}
			if time.Now().After(deadline) {
				if err != nil {
					return importState{State: pmsbridge.ImportPending}
				}
				return st
			}
		}
		select {
		case <-ctx.Done():
			return importState{State: pmsbridge.ImportPending}
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// importStatus is GET /imports/status?patient_id=N, which the waiting page
// follows.
func (s *Server) importStatus(w http.ResponseWriter, r *http.Request) {
	cid, problem := clinikoPatientID(r.URL.Query())
	if problem != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": problem})
		return
	}
	pr := practitionerFrom(r.Context())
	cu := clinikoUserFrom(r.Context())
	if cu == nil {
		writeJSON(w, http.StatusOK, importState{State: pmsbridge.ImportFailed, Cause: pmsbridge.CauseNoClinikoKey, Message: "Add your Cliniko API key under Cliniko settings."})
		return
	}
	st, err := s.importStateOf(r.Context(), pr, cu.Shard, cid, jobs.ImportTaskID(pr.SubscriptionID, cu.Shard, cid))
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "try again"})
		return
	}
	if st.State == pmsbridge.ImportNone {
		st.State = pmsbridge.ImportFailed
		st.Cause = pmsbridge.CauseInternal
		st.Message = "No import of this patient is running. Click \"Open in pmsbridge\" in Cliniko again."
	}
	if st.State == pmsbridge.ImportDone {
		// Name our patient only to someone who may open it; others are sent
		// back through the receiver, which explains whose patient it is.
		p, err := s.deps.Store.GetPatient(r.Context(), st.patientID)
		if err == nil {
			if acc, err := s.deps.Store.CanOpen(r.Context(), *pr, p); err == nil && !acc.Allowed {
				st.PatientURL = "/cliniko_patient_import?patient_id=" + cid + "&check=1"
			}
		}
	}
	writeJSON(w, http.StatusOK, st)
}
