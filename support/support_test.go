package support_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
	"github.com/physitrack/pmsbridge/support"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// world is two clinics with a practitioner each, a patient of the first,
// and ledger entries for both.
type world struct {
	ctx        context.Context
	st         *store.Store
	keyless    *store.Store
	demo, oth  store.Subscription
	ann, olga  store.Practitioner
	patient    store.Patient
	upload     store.Failure // ann's upload for the patient, with the Scheduler's key
	imp        store.Failure // an import of the demo clinic by a practitioner who is gone
	olgaUpload store.Failure
}

func setup(t *testing.T) *world {
	t.Helper()
	rdb := redistest.Client(t)
	keys, err := store.NewKeyring(bytes.Repeat([]byte{3}, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	argon := store.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}
	w := &world{ctx: context.Background()}
	if w.st, err = store.New(rdb, store.Options{Keys: keys, Argon2: argon}); err != nil {
		t.Fatal(err)
	}
	if w.keyless, err = store.New(rdb, store.Options{Argon2: argon}); err != nil {
		t.Fatal(err)
	}
	w.demo = must(w.st.CreateSubscription(w.ctx, "Demo Physio Clinic"))(t)
	w.oth = must(w.st.CreateSubscription(w.ctx, "Other Clinic"))(t)
	w.ann = must(w.st.CreatePractitioner(w.ctx, store.NewPractitioner{SubscriptionID: w.demo.ID, Email: "ann@demo.example", Name: "Ann Demo", Password: "correct horse battery"}))(t)
	w.olga = must(w.st.CreatePractitioner(w.ctx, store.NewPractitioner{SubscriptionID: w.oth.ID, Email: "olga@other.example", Name: "Olga Other", Password: "correct horse battery"}))(t)
	p, _, err := w.st.ImportPatient(w.ctx, w.demo.ID, "au1", "1001", w.ann.ID, store.Patient{FirstName: "Zoë", LastName: "O'Brien"})
	if err != nil {
		t.Fatal(err)
	}
	w.patient = p
	w.upload = store.Failure{TaskID: "pdf:prg_gumyupbsxhkq4nlw7ivexzta:v1", Queue: jobs.QueuePDF, Type: jobs.TypeUploadPDF, Permanent: true,
		Cause: pmsbridge.CauseClinikoForbidden, Reason: "Cliniko refused: this user's role may not do this.", PractitionerID: w.ann.ID,
		PatientID: p.ID, ProgrammeID: "prg_gumyupbsxhkq4nlw7ivexzta", Version: 1, Attempts: 1,
		KeyUser: &store.KeyUser{PractitionerID: w.ann.ID, ClinikoUserID: "4", Name: "Sam Scheduler", Role: "Scheduler"}}
	w.imp = store.Failure{TaskID: jobs.ImportTaskID(w.demo.ID, "au1", "1002"), Queue: jobs.QueueImport, Type: jobs.TypeImportPatient, Permanent: true,
		Cause: pmsbridge.CauseNoClinikoKey, Reason: "No key.", PractitionerID: "prac_gone", SubscriptionID: w.demo.ID, Attempts: 1}
	w.olgaUpload = store.Failure{TaskID: "pdf:prg_other:v2", Queue: jobs.QueuePDF, Type: jobs.TypeUploadPDF, Permanent: true,
		Cause: pmsbridge.CauseClinikoForbidden, Reason: "Forbidden.", PractitionerID: w.olga.ID, Attempts: 1}
	for _, f := range []store.Failure{w.upload, w.imp, w.olgaUpload} {
		if err := w.st.RecordFailure(w.ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	w := setup(t)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	twin := must(w.st.CreateSubscription(w.ctx, "Twin Clinic"))(t)
	twin2 := must(w.st.CreateSubscription(w.ctx, "Twin Clinic"))(t)
	for _, tc := range []struct {
		desc    string
		q       support.Query
		want    store.FailureFilter
		problem string // a *QueryError saying this
	}{
		{desc: "nothing", q: support.Query{}, want: store.FailureFilter{PermanentOnly: true}},
		{desc: "all", q: support.Query{All: true}, want: store.FailureFilter{}},
		{desc: "cause and type", q: support.Query{Cause: "cliniko_forbidden", Type: jobs.TypeUploadPDF},
			want: store.FailureFilter{Cause: pmsbridge.CauseClinikoForbidden, Type: jobs.TypeUploadPDF, PermanentOnly: true}},
		{desc: "practitioner by email", q: support.Query{Practitioner: " Ann@Demo.example "}, want: store.FailureFilter{PractitionerID: w.ann.ID, PermanentOnly: true}},
		{desc: "practitioner by id", q: support.Query{Practitioner: w.olga.ID}, want: store.FailureFilter{PractitionerID: w.olga.ID, PermanentOnly: true}},
		{desc: "clinic by id", q: support.Query{Clinic: w.oth.ID}, want: store.FailureFilter{SubscriptionID: w.oth.ID, PermanentOnly: true}},
		{desc: "clinic by name", q: support.Query{Clinic: "Demo Physio Clinic"}, want: store.FailureFilter{SubscriptionID: w.demo.ID, PermanentOnly: true}},
		{desc: "clinic by name in another case", q: support.Query{Clinic: "demo physio clinic"}, want: store.FailureFilter{SubscriptionID: w.demo.ID, PermanentOnly: true}},
		{desc: "since a duration", q: support.Query{Since: "24h"}, want: store.FailureFilter{Since: now.Add(-24 * time.Hour), PermanentOnly: true}},
		{desc: "since a time", q: support.Query{Since: "2026-11-21T08:00:00Z"}, want: store.FailureFilter{Since: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC), PermanentOnly: true}},
		{desc: "unknown cause", q: support.Query{Cause: "bogus"}, problem: `unknown cause "bogus"; causes are: cliniko_unauthorized,`},
		{desc: "unknown type", q: support.Query{Type: "pdf"}, problem: `unknown job type "pdf"; types are: `},
		{desc: "email of nobody", q: support.Query{Practitioner: "nobody@demo.example"}, problem: `no practitioner has the email "nobody@demo.example"`},
		{desc: "id of nobody", q: support.Query{Practitioner: "prac_nope"}, problem: `no practitioner "prac_nope": give a practitioner's email or id`},
		{desc: "unknown clinic", q: support.Query{Clinic: "Nowhere"}, problem: `no clinic "Nowhere": give a subscription id or a clinic's exact name`},
		{desc: "two clinics of a name", q: support.Query{Clinic: "Twin Clinic"}, problem: `2 clinics are named "Twin Clinic": give one of their ids (`},
		{desc: "bad since", q: support.Query{Since: "yesterday"}, problem: `since "yesterday": give a time like`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f, err := tc.q.Resolve(w.ctx, w.keyless, now)
			if tc.problem != "" {
				var qe *support.QueryError
				if !errors.As(err, &qe) || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("err = %v, want a QueryError saying %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, f.FailureFilter); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if (tc.q.Practitioner != "") != (f.Practitioner != nil) || (tc.q.Clinic != "") != (f.Clinic != nil) {
				t.Errorf("named practitioner %v, clinic %v", f.Practitioner, f.Clinic)
			}
		})
	}
	// The twins' error names both ids.
	_, err := support.Query{Clinic: "Twin Clinic"}.Resolve(w.ctx, w.st, now)
	if err == nil || !strings.Contains(err.Error(), twin.ID) || !strings.Contains(err.Error(), twin2.ID) {
		t.Errorf("twins: %v", err)
	}
}

// TestRows: every row names its practitioner, clinic, patient (with the
// key only) and the Cliniko user whose key failed; a clinic filter selects
// the rows of that clinic; the summary says how many and where.
func TestRows(t *testing.T) {
	t.Parallel()
	w := setup(t)
	list, err := w.st.ListFailures(w.ctx, store.FailureFilter{})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := support.Rows(w.ctx, w.st, list)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]support.Job{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	up := byID[w.upload.TaskID]
	if diff := cmp.Diff(&support.Person{ID: w.ann.ID, Name: "Ann Demo", Email: "ann@demo.example"}, up.Practitioner); diff != "" {
		t.Errorf("practitioner (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&support.Clinic{ID: w.demo.ID, Name: "Demo Physio Clinic"}, up.Clinic); diff != "" {
		t.Errorf("clinic (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&support.Patient{ID: w.patient.ID, Name: "Zoë O'Brien"}, up.Patient); diff != "" {
		t.Errorf("patient (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&support.ClinikoUser{ID: "4", Name: "Sam Scheduler", Role: "Scheduler", PractitionerID: w.ann.ID}, up.ClinikoUser); diff != "" {
		t.Errorf("cliniko user (-want +got):\n%s", diff)
	}
	if up.UserText() != "Sam Scheduler (Scheduler)" {
		t.Errorf("UserText = %q", up.UserText())
	}
	imp := byID[w.imp.TaskID]
	if imp.Practitioner != nil || imp.Clinic == nil || imp.Clinic.Name != "Demo Physio Clinic" || imp.ClinikoUser != nil {
		t.Errorf("import of a practitioner who is gone: %+v", imp)
	}
	if o := byID[w.olgaUpload.TaskID]; o.Clinic == nil || o.Clinic.Name != "Other Clinic" || o.Patient != nil {
		t.Errorf("Olga's upload: %+v", o)
	}

	// Without the encryption key: everything but the patient's name.
	rows, err = support.Rows(w.ctx, w.keyless, list)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.ID == w.upload.TaskID && (r.Patient == nil || r.Patient.Name != "" || r.Clinic == nil || r.Practitioner == nil) {
			t.Errorf("keyless row: patient %+v, clinic %+v", r.Patient, r.Clinic)
		}
	}

	demoRows := func() []support.Job {
		list, err := w.st.ListFailures(w.ctx, store.FailureFilter{SubscriptionID: w.demo.ID})
		if err != nil {
			t.Fatal(err)
		}
		return must(support.Rows(w.ctx, w.st, list))(t)
	}()
	for _, tc := range []struct {
		rows []support.Job
		want string
	}{
		{demoRows, "2 failed jobs of Demo Physio Clinic"},
		{demoRows[:1], "1 failed job of Demo Physio Clinic"},
		{rows, "3 failed jobs across 2 clinics (Demo Physio Clinic: 2, Other Clinic: 1)"},
		{nil, "0 failed jobs"},
		{[]support.Job{{}}, "1 failed job"},
	} {
		if got := support.Summary(tc.rows, "failed job", "failed jobs"); got != tc.want {
			t.Errorf("Summary = %q, want %q", got, tc.want)
		}
	}
}

// TestShow: a job in the ledger, a recovered one, one that succeeded on its
// own (history only), a deleted one, and one nobody knows.
func TestShow(t *testing.T) {
	t.Parallel()
	w := setup(t)
	d, err := support.Show(w.ctx, w.st, w.upload.TaskID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != "failed" || d.Clinic == nil || len(d.History) != 1 || d.History[0].Kind != store.EventFailed || d.Audit == nil {
		t.Errorf("failed job: %+v", d)
	}
	f := must(w.st.GetFailure(w.ctx, w.upload.TaskID))(t)
	_ = must(w.st.MarkReplayed(store.ActingAs(w.ctx, store.Actor{Via: store.ViaCLI, Who: "ann@desk"}), f))(t)
	if err := w.st.ClearFailure(w.ctx, w.upload.TaskID); err != nil {
		t.Fatal(err)
	}
	d = must(support.Show(w.ctx, w.st, w.upload.TaskID, 10))(t)
	var steps []string
	for _, e := range d.History {
		steps = append(steps, support.EventText(e))
	}
	want := []string{
		"attempt 1 failed: cliniko_forbidden (Cliniko refused: this user's role may not do this), with the Cliniko key of Sam Scheduler (Scheduler); failed for good",
		"replayed by CLI (ann@desk)",
		"succeeded",
	}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Errorf("recovered job's history (-want +got):\n%s", diff)
	}
	if d.State != support.StateDone || d.RecoveredAt == nil || d.Replayed == nil || d.Clinic == nil || d.Type != jobs.TypeUploadPDF {
		t.Errorf("recovered job: %+v", d.Job)
	}

	if err := w.st.ClearFailure(w.ctx, w.olgaUpload.TaskID); err != nil {
		t.Fatal(err)
	}
	if d := must(support.Show(w.ctx, w.st, w.olgaUpload.TaskID, 10))(t); d.State != support.StateDone || d.ID != w.olgaUpload.TaskID || len(d.History) != 2 {
		t.Errorf("job that succeeded on its own: %+v", d)
	}
	if err := w.st.DeleteFailure(store.ActingAs(w.ctx, store.Actor{Via: store.ViaAPI}), w.imp.TaskID); err != nil {
		t.Fatal(err)
	}
	if d := must(support.Show(w.ctx, w.st, w.imp.TaskID, 10))(t); d.State != support.StateDeleted || support.EventText(d.History[1]) != "deleted by admin API" {
		t.Errorf("deleted job: %+v", d)
	}
	if _, err := support.Show(w.ctx, w.st, "pdf:nope:v1", 10); !errors.Is(err, support.ErrUnknownJob) {
		t.Errorf("unknown job: %v", err)
	}
}

func TestEventText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		e    store.JobEvent
		want string
	}{
		{store.JobEvent{Kind: store.EventFailed, Attempt: 1, Count: 3, LastAttempt: 3, Cause: pmsbridge.CauseClinikoUnavailable},
			"attempts 1–3 failed: cliniko_unavailable; retried"},
		{store.JobEvent{Kind: store.EventFailed, Attempt: 1, Count: 96, LastAttempt: 1, Permanent: true, Cause: pmsbridge.CauseClinikoUnauthorized, Reason: "Key revoked."},
			"failed 96 times: cliniko_unauthorized (Key revoked); failed for good"},
		{store.JobEvent{Kind: store.EventFailed, Attempt: 2, Count: 1, Cause: pmsbridge.CauseClinikoForbidden, KeyUser: &store.KeyUser{Role: "Scheduler"}},
			"attempt 2 failed: cliniko_forbidden, with the Cliniko key of a Cliniko Scheduler; retried"},
		{store.JobEvent{Kind: store.EventReplayed, By: &store.Actor{Via: store.ViaKeySaved, Who: "demo@clinic.example"}},
			"replayed by automatically after a Cliniko key was saved (demo@clinic.example)"},
		{store.JobEvent{Kind: store.EventReplayed}, "replayed by unknown"},
		{store.JobEvent{Kind: store.EventDeleted, By: &store.Actor{Via: store.ViaAdminPage}}, "deleted by admin page"},
	} {
		if got := support.EventText(tc.e); got != tc.want {
			t.Errorf("EventText(%+v)\n got %q\nwant %q", tc.e, got, tc.want)
		}
	}
}

func TestShortIDAndCount(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"pdf:prg_gumyupbsxhkq4nlw7ivexzta:v1":                 "pdf:prg_gumyup…:v1",
		"import:sub_7t6m22loanxhkq4nlw7ivexz:au1:83644712923": "import:sub_7t6m22…:au1:83644712923",
		"sync:prac_abcdefghijklmnopqrstuvwx":                  "sync:prac_abcdef…",
		"refresh:pat_short":                                   "refresh:pat_short",
	} {
		if got := support.ShortID(in); got != want {
			t.Errorf("ShortID(%q) = %q, want %q", in, got, want)
		}
	}
	for id, want := range map[string][2]string{
		"pdf:prg_gumyupbsxhkq4nlw7ivexzta:v1":                 {"pdf:prg_gumyupbsxhkq4nlw7ivexzta", ":v1"},
		"import:sub_7t6m22loanxhkq4nlw7ivexz:au1:83644712923": {"import:sub_7t6m22loanxhkq4nlw7ivexz", ":au1:83644712923"},
		"refresh:pat_short":                                   {"refresh:pat_short", ""},
	} {
		if h, tl := support.IDParts(id); h != want[0] || tl != want[1] {
			t.Errorf("IDParts(%q) = %q, %q; want %q", id, h, tl, want)
		}
	}
}

// svgRect is a bar segment of the chart.
type svgRect struct {
	Height string `xml:"height,attr"`
	Y      string `xml:"y,attr"`
	Cause  string `xml:"data-cause,attr"`
	Count  string `xml:"data-count,attr"`
	Title  string `xml:"title"`
}

// parseChart reads the chart's SVG element as XML: it must be well formed.
func parseChart(t *testing.T, html string) []svgRect {
	t.Helper()
	end := strings.Index(html, "</svg>")
	if !strings.HasPrefix(html, "<svg") || end < 0 {
		t.Fatalf("not an SVG: %.80s", html)
	}
	dec := xml.NewDecoder(strings.NewReader(html[:end+len("</svg>")]))
	var rects []svgRect
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return rects
		}
		if err != nil {
			t.Fatalf("the SVG is not well formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			var r svgRect
			if err := dec.DecodeElement(&r, &se); err != nil {
				t.Fatal(err)
			}
			rects = append(rects, r)
		}
	}
}

// TestFailureChart reads the hourly counts of the store and draws them:
// one stacked segment per hour and cause, heights in proportion, a title
// on each, a legend with totals, outside text escaped, no script.
func TestFailureChart(t *testing.T) {
	t.Parallel()
	w := setup(t)
	now := time.Now().UTC()
	h := now.Truncate(time.Hour)
	record := func(at time.Time, cause pmsbridge.Cause, n int) {
		for i := range n {
			f := store.Failure{TaskID: "pdf:chart" + strconv.Itoa(i) + string(cause) + at.Format("15"), Type: jobs.TypeUploadPDF, Permanent: true, Cause: cause, Attempts: 1, LastFailedAt: at}
			if err := w.st.RecordFailure(w.ctx, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	// setup recorded 3 failures in this hour: 2 forbidden, 1 no key.
	record(h.Add(-2*time.Hour+time.Minute), pmsbridge.CauseClinikoUnavailable, 4)
	record(h.Add(-2*time.Hour+2*time.Minute), pmsbridge.CauseClinikoForbidden, 1)
	record(h.Add(-30*time.Hour), pmsbridge.CauseClinikoInvalid, 7) // before the chart's 24 hours
	c, err := support.FailureChart(w.ctx, w.st, now, 24)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Hours) != 24 || !c.Hours[23].Hour.Equal(h) || c.Max != 5 || c.Top != 5 || c.Total != 8 {
		t.Fatalf("chart: %d hours to %s, max %d, top %d, total %d", len(c.Hours), c.Hours[len(c.Hours)-1].Hour, c.Max, c.Top, c.Total)
	}
	var causes []string
	for _, ct := range c.Causes {
		causes = append(causes, string(ct.Cause)+"="+strconv.Itoa(ct.Total))
	}
	if diff := cmp.Diff([]string{"cliniko_forbidden=3", "cliniko_unavailable=4", "no_cliniko_key=1"}, causes); diff != "" {
		t.Errorf("causes in table order (-want +got):\n%s", diff)
	}
	svg := string(c.SVG())
	rects := parseChart(t, svg)
	var segments []string
	heights := map[string]float64{}
	for _, r := range rects {
		segments = append(segments, r.Cause+"="+r.Count)
		hh, _ := strconv.ParseFloat(r.Height, 64)
		heights[r.Cause+"="+r.Count] = hh
		if !strings.Contains(r.Title, "UTC: ") || !strings.HasSuffix(r.Title, r.Cause) {
			t.Errorf("segment title %q", r.Title)
		}
	}
	if diff := cmp.Diff([]string{"cliniko_forbidden=1", "cliniko_unavailable=4", "cliniko_forbidden=2", "no_cliniko_key=1"}, segments); diff != "" {
		t.Errorf("segments, oldest hour first (-want +got):\n%s", diff)
	}
	if heights["cliniko_unavailable=4"] != 4*heights["cliniko_forbidden=1"] || heights["cliniko_forbidden=2"] != 2*heights["no_cliniko_key=1"] {
		t.Errorf("heights not in proportion: %v", heights)
	}
	for _, want := range []string{`aria-label="Failed attempts per hour by cause: 8 failed attempts in the last 24 hours"`, "4 failed attempts cliniko_unavailable", "1 failed attempt cliniko_forbidden",
		`<span title="` + pmsbridge.CauseClinikoUnavailable.Info().Support.Title + `">cliniko_unavailable</span> 4</li>`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(svg), "<script") || strings.Contains(svg, "http://") && !strings.Contains(svg, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("chart has script or external references")
	}

	// A cause from another version, with markup in it, is escaped.
	odd := support.NewChart([]store.HourCount{{Hour: h, ByCause: map[pmsbridge.Cause]int{`<b>"x"</b>`: 2}}})
	oddSVG := string(odd.SVG())
	parseChart(t, oddSVG)
	if strings.Contains(oddSVG, "<b>") || !strings.Contains(oddSVG, "&lt;b&gt;&#34;x&#34;&lt;/b&gt;") {
		t.Errorf("unknown cause not escaped: %s", oddSVG)
	}
	// Nothing failed: the chart says so.
	empty := string(support.NewChart(make([]store.HourCount, 24)).SVG())
	if rects := parseChart(t, empty); len(rects) != 0 || !strings.Contains(empty, "No failed attempts in the last 24 hours.") {
		t.Errorf("empty chart: %d segments\n%s", len(rects), empty)
	}
}

// TestSelectSearch: a search keeps the rows whose words contain it, in any
// case; a patient's name is searchable only with the encryption key.
func TestSelectSearch(t *testing.T) {
	t.Parallel()
	w := setup(t)
	now := time.Now()
	ids := func(st *store.Store, q support.Query) []string {
		t.Helper()
		f, err := q.Resolve(w.ctx, st, now)
		if err != nil {
			t.Fatal(err)
		}
		list, rows, err := support.Select(w.ctx, st, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(rows) {
			t.Fatalf("%d entries, %d rows", len(list), len(rows))
		}
		out := []string{}
		for i, r := range rows {
			if list[i].TaskID != r.ID {
				t.Errorf("entry %d is %s, row %s", i, list[i].TaskID, r.ID)
			}
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		search string
		want   []string
	}{
		{"scheduler", []string{w.upload.TaskID}},        // the Cliniko user
		{"ZOË", []string{w.upload.TaskID}},              // the patient, with the key
		{"olga@", []string{w.olgaUpload.TaskID}},        // a practitioner's email
		{"other clinic", []string{w.olgaUpload.TaskID}}, // a clinic's name
		{"no key", []string{w.imp.TaskID}},              // the reason
		{"prg_gumyup", []string{w.upload.TaskID}},       // an id
		{"nothing like it", []string{}},                 // nothing
	} {
		if diff := cmp.Diff(tc.want, ids(w.st, support.Query{Search: tc.search})); diff != "" {
			t.Errorf("search %q (-want +got):\n%s", tc.search, diff)
		}
	}
	if got := ids(w.keyless, support.Query{Search: "zoë"}); len(got) != 0 {
		t.Errorf("without the key a patient's name found %v", got)
	}
	if got := ids(w.st, support.Query{Search: "forbidden", Clinic: "Other Clinic"}); !cmp.Equal(got, []string{w.olgaUpload.TaskID}) {
		t.Errorf("search and clinic: %v", got)
	}
}

// TestLoadPage: the page's lists, groups, summary and choices for a query;
// a query that matches nobody is a problem to show, not an error.
func TestLoadPage(t *testing.T) {
	t.Parallel()
	w := setup(t)
	now := time.Now()
	// Olga's job is replayed and recovers.
	f := must(w.st.GetFailure(w.ctx, w.olgaUpload.TaskID))(t)
	_ = must(w.st.MarkReplayed(store.ActingAs(w.ctx, store.Actor{Via: store.ViaAdminPage}), f))(t)
	if err := w.st.ClearFailure(w.ctx, f.TaskID); err != nil {
		t.Fatal(err)
	}
	p, err := support.LoadPage(w.ctx, w.st, support.Query{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if p.Problem != "" || len(p.Jobs) != 2 || p.Summary != "2 failed jobs of Demo Physio Clinic" || len(p.Recovered) != 1 || p.Recovered[0].ID != w.olgaUpload.TaskID {
		t.Errorf("page: problem %q, %d jobs, summary %q, recovered %v", p.Problem, len(p.Jobs), p.Summary, p.Recovered)
	}
	var groups []string
	for _, g := range p.Groups {
		groups = append(groups, string(g.Cause)+": "+g.Summary+" — "+g.Support.Title)
	}
	want := []string{
		"cliniko_forbidden: 1 failed job of Demo Physio Clinic — " + pmsbridge.CauseClinikoForbidden.Info().Support.Title,
		"no_cliniko_key: 1 failed job of Demo Physio Clinic — " + pmsbridge.CauseNoClinikoKey.Info().Support.Title,
	}
	if diff := cmp.Diff(want, groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if len(p.Clinics) != 2 || p.Clinics[0].Name != "Demo Physio Clinic" || len(p.Causes) != len(pmsbridge.Causes) || len(p.Types) == 0 || len(p.Chart.Hours) != support.ChartHours || p.Chart.Total != 3 {
		t.Errorf("choices: %d clinics, %d causes, %d types; chart %d hours, %d failures", len(p.Clinics), len(p.Causes), len(p.Types), len(p.Chart.Hours), p.Chart.Total)
	}
	// The other clinic: no failed job, one recovered.
	p = must(support.LoadPage(w.ctx, w.st, support.Query{Clinic: "other clinic"}, now))(t)
	if len(p.Jobs) != 0 || len(p.Groups) != 0 || len(p.Recovered) != 1 || p.Summary != "0 failed jobs" {
		t.Errorf("other clinic: %d jobs, %d recovered, %q", len(p.Jobs), len(p.Recovered), p.Summary)
	}
	p = must(support.LoadPage(w.ctx, w.st, support.Query{Practitioner: "nobody@example.com"}, now))(t)
	if !strings.Contains(p.Problem, "no practitioner has the email") || len(p.Jobs) != 0 || len(p.Clinics) != 2 {
		t.Errorf("unknown email: problem %q, %d jobs", p.Problem, len(p.Jobs))
	}
}
