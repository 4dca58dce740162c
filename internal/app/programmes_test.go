package app_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/bridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// codeRe is the form of a programme access code.
var codeRe = regexp.MustCompile(`^[a-z]{8}$`)

// patientDoc reads GET /api/patients/{id} as b sees it.
func patientDoc(t *testing.T, b *apptest.Browser, id string) bridge.PatientJSON {
	t.Helper()
	r := b.Get("/api/patients/" + id)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/patients/%s: %d %s", id, r.StatusCode, r.Body)
	}
	var doc bridge.PatientJSON
	if err := json.Unmarshal([]byte(r.Body), &doc); err != nil {
		t.Fatalf("GET /api/patients/%s: %v\n%s", id, err, r.Body)
	}
	return doc
}

// programmeIn finds a programme version in a patient document.
func programmeIn(doc bridge.PatientJSON, id string, version int) (bridge.ProgrammeJSON, bool) {
	for _, p := range doc.Programmes {
		if p.ID == id && p.Version == version {
			return p, true
		}
	}
	return bridge.ProgrammeJSON{}, false
}

// waitPDFState polls the patient JSON until the programme version's PDF is
// in state want, and returns it.
func waitPDFState(t *testing.T, e *apptest.Env, b *apptest.Browser, patientID, progID string, version int, want pmsbridge.PDFState) bridge.ProgrammeJSON {
	t.Helper()
	var got bridge.ProgrammeJSON
	e.Eventually(progID+" pdf "+string(want), func() bool {
		p, ok := programmeIn(patientDoc(t, b, patientID), progID, version)
		got = p
		return ok && p.PDF.State == want
	})
	return got
}

// assignProgramme posts the patient page's assign form and expects the
// redirect back to the patient; it returns the new (or new version of the)
// programme as the patient JSON shows it.
func assignProgramme(t *testing.T, b *apptest.Browser, patientID string, form url.Values) bridge.ProgrammeJSON {
	t.Helper()
	before := patientDoc(t, b, patientID).Programmes
	r := b.PostForm("/patients/"+patientID+"/programmes", form)
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/patients/"+patientID+"?done=assigned&") {
		t.Fatalf("assign %v: got %d to %q, want 303 to the patient page saying what happens to the PDF and the code\n%s", form, r.StatusCode, r.Location(), r.Body)
	}
	after := patientDoc(t, b, patientID).Programmes
	for _, p := range after {
		if !slices.ContainsFunc(before, func(x bridge.ProgrammeJSON) bool { return x.ID == p.ID && x.Version == p.Version }) {
			// The notice's keys: what happens to the PDF (pdf=) and which
			// programme's code to tell about (programme=).
			if u, err := url.Parse(r.Location()); err != nil || u.Query().Get("programme") != p.ID || u.Query().Get("pdf") == "" {
				t.Errorf("assign: redirect to %q, want done=assigned with pdf= and programme=%s", r.Location(), p.ID)
			}
			return p
		}
	}
	t.Fatalf("assign %v: no new programme version in the patient JSON (%d before, %d after)", form, len(before), len(after))
	return bridge.ProgrammeJSON{}
}

// kneeForm is a valid assign form.
func kneeForm(title string, exercises ...string) url.Values {
	if len(exercises) == 0 {
		exercises = []string{"ex_quad_set", "ex_straight_leg_raise"}
	}
	return url.Values{"title": {title}, "exercise": exercises, "notes": {"Stop if pain rises above 5/10."}}
}

// pdfText extracts a PDF's text with poppler's pdftotext. A missing
// pdftotext fails the test, as in the jobs and pdf packages: scripts/test
// installs it, and the checks that read a PDF's text are the proof.
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("not a PDF: %.40q", pdf)
	}
	path, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatalf("pdftotext not found (install poppler-utils; scripts/test does): %v", err)
	}
	cmd := exec.Command(path, "-enc", "UTF-8", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

// normSpace folds whitespace runs and typographic apostrophes, as text
// extracted from a PDF may break lines or curl quotes.
func normSpace(s string) string {
	s = strings.ReplaceAll(s, "’", "'")
	return strings.Join(strings.Fields(s), " ")
}

// pdfTasks lists the tasks of the pdf queue in every state asynq keeps.
func pdfTasks(t *testing.T, e *apptest.Env) []*asynq.TaskInfo {
	t.Helper()
	insp := e.Jobs.Inspector()
	var all []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		insp.ListPendingTasks, insp.ListActiveTasks, insp.ListScheduledTasks, insp.ListRetryTasks, insp.ListArchivedTasks, insp.ListCompletedTasks,
	} {
		ts, err := list(jobs.QueuePDF)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatalf("list pdf tasks: %v", err)
		}
		all = append(all, ts...)
	}
	return all
}

// pdfProcessed is how many pdf tasks were ever queued: those still in the
// queue plus those processed today.
func pdfProcessed(t *testing.T, e *apptest.Env) int {
	t.Helper()
	qi, err := e.Jobs.Inspector().GetQueueInfo(jobs.QueuePDF)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("pdf queue info: %v", err)
	}
	return qi.Size + qi.Processed
}

// attachmentsOf is the sandbox's attachments of a Cliniko patient.
func attachmentsOf(e *apptest.Env, clinikoID string) []sandbox.Attachment {
	return e.Sandbox.Attachments(clinikoID)
}

// stillExactly checks that a patient keeps exactly n attachments for a
// while (no late duplicate upload).
func stillExactly(t *testing.T, e *apptest.Env, clinikoID string, n int) []sandbox.Attachment {
	t.Helper()
	deadline := time.Now().Add(400 * time.Millisecond)
	var got []sandbox.Attachment
	for time.Now().Before(deadline) {
		got = attachmentsOf(e, clinikoID)
		if len(got) != n {
			t.Fatalf("Cliniko patient %s has %d attachments, want exactly %d", clinikoID, len(got), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return got
}

func TestExercisesCatalogue(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	r := e.NewBrowser().Get("/api/exercises")
	if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/exercises: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	var raw struct {
		Exercises []map[string]any `json:"exercises"`
	}
	if err := json.Unmarshal([]byte(r.Body), &raw); err != nil {
		t.Fatal(err)
	}
	cat := pmsbridge.Catalogue()
	if len(raw.Exercises) != len(cat) || len(cat) == 0 {
		t.Fatalf("got %d exercises, want the %d of the catalogue", len(raw.Exercises), len(cat))
	}
	wantKeys := []string{"body_region", "days_per_week", "hold_seconds", "id", "instructions", "name", "reps", "sets", "times_per_day"}
	for i, x := range raw.Exercises {
		var keys []string
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if diff := cmp.Diff(wantKeys, keys); diff != "" {
			t.Errorf("exercise %d keys (-want +got):\n%s", i, diff)
		}
		if x["id"] != cat[i].ID || x["name"] != cat[i].Name || x["sets"] != float64(cat[i].Sets) || x["body_region"] != cat[i].BodyRegion {
			t.Errorf("exercise %d = %v, want %+v", i, x, cat[i])
		}
	}
}

func TestProgrammeAssignUploadsOncePerVersion(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(sandbox.DemoPatientID)
	if pid == "" {
		t.Fatal("import failed")
	}

	v1 := assignProgramme(t, b, pid, kneeForm("Knee rehab, week 1"))
	if v1.Version != 1 || !codeRe.MatchString(v1.Code) {
		t.Fatalf("new programme: version %d code %q, want version 1 and an 8-letter code", v1.Version, v1.Code)
	}
	var atts []sandbox.Attachment
	e.Eventually("the PDF in Cliniko", func() bool { atts = attachmentsOf(e, sandbox.DemoPatientID); return len(atts) >= 1 })
	got := waitPDFState(t, e, b, pid, v1.ID, 1, pmsbridge.PDFUploaded)
	atts = stillExactly(t, e, sandbox.DemoPatientID, 1)
	a1 := atts[0]
	if got.PDF.AttachmentID != a1.ID {
		t.Errorf("pdf.attachment_id = %q, want the sandbox attachment %q", got.PDF.AttachmentID, a1.ID)
	}
	if a1.ContentType != "application/pdf" || !strings.HasSuffix(a1.Filename, ".pdf") {
		t.Errorf("attachment %q has content type %q", a1.Filename, a1.ContentType)
	}
	text := normSpace(pdfText(t, a1.Content))
	for _, want := range []string{"Zoë O'Brien", v1.Code, "Knee rehab, week 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("uploaded PDF text lacks %q:\n%s", want, text)
		}
	}

	t.Run("download serves the uploaded bytes", func(t *testing.T) {
		r := b.Get("/patients/" + pid + "/programmes/" + v1.ID + "/versions/1/pdf")
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/pdf" {
			t.Fatalf("download: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
		}
		if !bytes.Equal([]byte(r.Body), a1.Content) {
			t.Errorf("downloaded PDF (%d bytes) differs from the one in Cliniko (%d bytes)", len(r.Body), len(a1.Content))
		}
		if r := b.Get("/patients/" + pid + "/programmes/" + v1.ID + "/versions/9/pdf"); r.StatusCode != http.StatusNotFound {
			t.Errorf("download of a version that does not exist: %d, want 404", r.StatusCode)
		}
	})

	t.Run("new version keeps the code and adds an attachment", func(t *testing.T) {
		form := kneeForm("Knee rehab, week 2", "ex_heel_slide", "ex_sit_to_stand")
		form.Set("programme_id", v1.ID)
		v2 := assignProgramme(t, b, pid, form)
		if v2.ID != v1.ID || v2.Version != 2 || v2.Code != v1.Code {
			t.Fatalf("new version: %s v%d code %q, want %s v2 code %q", v2.ID, v2.Version, v2.Code, v1.ID, v1.Code)
		}
		waitPDFState(t, e, b, pid, v1.ID, 2, pmsbridge.PDFUploaded)
		atts := stillExactly(t, e, sandbox.DemoPatientID, 2)
		if atts[1].ID == a1.ID || bytes.Equal(atts[1].Content, a1.Content) {
			t.Errorf("the second version did not make a new PDF")
		}
		if text := normSpace(pdfText(t, atts[1].Content)); !strings.Contains(text, v1.Code) || !strings.Contains(text, "week 2") {
			t.Errorf("version 2's PDF lacks the code or its title:\n%s", text)
		}
		doc := patientDoc(t, b, pid)
		if len(doc.Programmes) != 2 {
			t.Errorf("patient JSON lists %d programme versions, want 2", len(doc.Programmes))
		}
		if n := e.Sandbox.RequestCount("create_attachment"); n != 2 {
			t.Errorf("create_attachment was called %d times, want 2", n)
		}
	})
}

func TestProgrammeAssignRejectsBadInput(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(sandbox.DemoPatientID)
	if pid == "" {
		t.Fatal("import failed")
	}
	if err := e.Jobs.Inspector().PauseQueue(jobs.QueuePDF); err != nil { // anything queued stays visible
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		form url.Values
		want string
	}{
		{"no title", url.Values{"exercise": {"ex_quad_set"}}, "Give the programme a title."},
		{"blank title", url.Values{"title": {"   "}, "exercise": {"ex_quad_set"}}, "Give the programme a title."},
		{"no exercise", url.Values{"title": {"Knee"}}, "Choose at least one exercise."},
		{"unknown exercise id", url.Values{"title": {"Knee"}, "exercise": {"ex_quad_set", "ex_nope"}}, "not in the catalogue"},
		{"title too long", url.Values{"title": {strings.Repeat("é", 201)}, "exercise": {"ex_quad_set"}}, "The title is too long"},
		{"notes too long", url.Values{"title": {"Knee"}, "exercise": {"ex_quad_set"}, "notes": {strings.Repeat("n", 4001)}}, "The notes are too long"},
		{"bad start date", url.Values{"title": {"Knee"}, "exercise": {"ex_quad_set"}, "starts_on": {"22/11/2026"}}, "The start date must be a date"},
		{"version of another patient's programme", url.Values{"title": {"Knee"}, "exercise": {"ex_quad_set"}, "programme_id": {"prg_elsewhere"}}, "not one of this patient"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := b.PostForm("/patients/"+pid+"/programmes", tc.form)
			if r.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("got %d, want 422", r.StatusCode)
			}
			if !strings.Contains(r.Body, tc.want) || !strings.Contains(r.Body, `role="alert"`) {
				t.Errorf("the 422 page does not say %q", tc.want)
			}
			if n := len(patientDoc(t, b, pid).Programmes); n != 0 {
				t.Errorf("%d programmes were created", n)
			}
			if ts := pdfTasks(t, e); len(ts) != 0 {
				t.Errorf("%d pdf tasks were queued", len(ts))
			}
		})
	}
	if n := e.Sandbox.RequestCount("presign") + e.Sandbox.RequestCount("list_attachments"); n != 0 {
		t.Errorf("bad forms made %d Cliniko attachment calls", n)
	}
}

// TestProgrammeUploadForbiddenThenFixed: a Scheduler's key may not upload
// files; the failure shows with its cause and reason and is replayed by the
// fix (saving a key with an allowed role) or by the "Send to Cliniko again"
// button, and the PDF then lands exactly once.
func TestProgrammeUploadForbiddenThenFixed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc string
		fix  func(t *testing.T, e *apptest.Env, b *apptest.Browser, pid string, prog bridge.ProgrammeJSON)
	}{
		{"saving a key with an allowed role replays it", func(t *testing.T, e *apptest.Env, b *apptest.Browser, _ string, _ bridge.ProgrammeJSON) {
			r := b.PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoPractitionerKey}})
			if r.StatusCode != http.StatusSeeOther || r.Location() != "/settings/cliniko?done=saved&replayed=1" {
				t.Fatalf("save key: %d to %q, want 303 to the settings page with replayed=1", r.StatusCode, r.Location())
			}
			if page := b.Get(r.Location()); !strings.Contains(page.Body, "A programme PDF or an import that had failed is running again with it.") {
				t.Errorf("settings page does not say that the failed job runs again")
			}
		}},
		{"Send to Cliniko again after the role is fixed in Cliniko", func(t *testing.T, e *apptest.Env, b *apptest.Browser, pid string, prog bridge.ProgrammeJSON) {
			e.Sandbox.SetRole("4", sandbox.RolePractitioner)
			r := b.PostForm("/patients/"+pid+"/programmes/"+prog.ID+"/versions/1/resend", nil)
			if r.StatusCode != http.StatusSeeOther || r.Location() != "/patients/"+pid+"?done=resent" {
				t.Fatalf("resend: %d to %q", r.StatusCode, r.Location())
			}
			// The job's history says the practitioner asked.
			if by := replayedBy(t, e, jobs.UploadTaskID(prog.ID, 1)); by != (store.Actor{Via: store.ViaPractitioner, Who: "sam@clinic.example"}) {
				t.Errorf("the resend is in the history as %v", by)
			}
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e := apptest.Start(t, apptest.Options{})
			e.SeedClinic("Demo Physio Clinic", map[string]string{"sam@clinic.example": sandbox.DemoSchedulerKey})
			b := e.Login("sam@clinic.example")
			_, pid := b.Open(sandbox.DemoPatientID) // a Scheduler may read patients
			if pid == "" {
				t.Fatal("import with a Scheduler key failed")
			}
			prog := assignProgramme(t, b, pid, kneeForm("Back care"))
			failed := waitPDFState(t, e, b, pid, prog.ID, 1, pmsbridge.PDFFailed)
			if failed.PDF.Cause != string(pmsbridge.CauseClinikoForbidden) || failed.PDF.Reason == "" {
				t.Errorf("pdf = %+v, want cause cliniko_forbidden with a reason", failed.PDF)
			}
			// The row says what happened and what fixes it in the cause
			// table's words (not the raw reason, which support reads).
			page := b.Get("/patients/" + pid)
			words := pmsbridge.CauseClinikoForbidden.Info().Clinician
			for _, want := range []string{"failed", words.Row, words.Note, "Send to Cliniko again"} {
				if !strings.Contains(page.Body, htmlEscape(want)) {
					t.Errorf("patient page lacks %q", want)
				}
			}
			if !strings.Contains(strings.ToLower(failed.PDF.Reason), "role") && !strings.Contains(failed.PDF.Reason, "403") {
				t.Errorf("reason %q does not explain the role problem", failed.PDF.Reason)
			}
			if n := len(attachmentsOf(e, sandbox.DemoPatientID)); n != 0 {
				t.Fatalf("%d attachments after a refused upload", n)
			}

			tc.fix(t, e, b, pid, prog)
			done := waitPDFState(t, e, b, pid, prog.ID, 1, pmsbridge.PDFUploaded)
			atts := stillExactly(t, e, sandbox.DemoPatientID, 1)
			if done.PDF.AttachmentID != atts[0].ID || done.PDF.Cause != "" {
				t.Errorf("pdf = %+v, want attachment %s and no cause", done.PDF, atts[0].ID)
			}
			if _, err := e.Store.GetFailure(t.Context(), jobs.UploadTaskID(prog.ID, 1)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("failure ledger entry after success: %v, want none", err)
			}
			if page := b.Get("/patients/" + pid); strings.Contains(page.Body, "Send to Cliniko again") {
				t.Errorf("patient page still offers to send again after the upload")
			}
			// An uploaded version is not sent twice.
			if r := b.PostForm("/patients/"+pid+"/programmes/"+prog.ID+"/versions/1/resend", nil); r.StatusCode != http.StatusConflict {
				t.Errorf("resend of an uploaded version: %d, want 409", r.StatusCode)
			}
		})
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}
