package bridge

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// TestCausePage: every cause maps to its HTTP status and to the cause
// table's words; a failure's own reason is shown where it adds to them;
// "Try again" only for causes that are retried by themselves; the settings
// page is linked where the fix is made there.
func TestCausePage(t *testing.T) {
	t.Parallel()
	status := map[pmsbridge.Cause]int{
		pmsbridge.CauseClinikoUnauthorized: http.StatusForbidden,
		pmsbridge.CauseClinikoForbidden:    http.StatusForbidden,
		pmsbridge.CauseClinikoNotFound:     http.StatusNotFound,
		pmsbridge.CauseClinikoInvalid:      http.StatusUnprocessableEntity,
		pmsbridge.CauseClinikoRateLimited:  http.StatusServiceUnavailable,
		pmsbridge.CauseClinikoUnavailable:  http.StatusServiceUnavailable,
		pmsbridge.CauseNoClinikoKey:        http.StatusConflict,
		pmsbridge.CauseNotLinked:           http.StatusConflict,
		pmsbridge.CauseInvalidPayload:      http.StatusInternalServerError,
		pmsbridge.CauseInternal:            http.StatusInternalServerError,
		pmsbridge.CauseNoContact:           http.StatusInternalServerError,
		pmsbridge.CauseDeliveryRejected:    http.StatusInternalServerError,
		pmsbridge.CauseDeliveryUnavailable: http.StatusInternalServerError,
		"from_a_newer_version":             http.StatusInternalServerError,
	}
	const reason, again = "Cliniko said: the file type is not allowed.", "/cliniko_patient_import?patient_id=1"
	for _, cause := range append(slices.Clone(pmsbridge.Causes), "from_a_newer_version") {
		t.Run(string(cause), func(t *testing.T) {
			want, ok := status[cause]
			if !ok {
				t.Fatalf("no status in this test for %s: add the one the page should have", cause)
			}
			got, m := causePage(cause, reason, again)
			if got != want {
				t.Errorf("status %d, want %d", got, want)
			}
			words := cause.Info().Clinician
			paragraphs := slices.Clone(words.Explain)
			if cause == pmsbridge.CauseClinikoInvalid {
				paragraphs = append(paragraphs, reason)
			}
			var links []string
			if cause.Transient() {
				links = append(links, "Try again "+again)
			}
			if words.Settings {
				links = append(links, "Open Cliniko settings /settings/cliniko")
			}
			links = append(links, "Go to your patients /patients")
			var gotLinks []string
			for _, l := range m.Links {
				gotLinks = append(gotLinks, l.Text+" "+l.URL)
			}
			wantPage := []any{words.Heading, paragraphs, words.Steps, links, cause == pmsbridge.CauseClinikoNotFound}
			gotPage := []any{m.Heading, m.Paragraphs, m.Steps, gotLinks, m.NotYou}
			if d := cmp.Diff(wantPage, gotPage); d != "" {
				t.Errorf("page (-want +got):\n%s", d)
			}
			if _, m := causePage(cause, "", ""); slices.ContainsFunc(m.Links, func(l link) bool { return l.Text == "Try again" }) ||
				slices.Contains(m.Paragraphs, "") {
				t.Errorf("without a reason and a place to try again: %+v", m)
			}
		})
	}
}

// TestCauseErrorRenders: each cause's page renders with the layout, for
// the logged-in practitioner who meets it, with its status and heading.
func TestCauseErrorRenders(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.DiscardHandler)}
	me := &store.Practitioner{ID: "prc_a", Name: "Dr Demo"}
	for _, cause := range pmsbridge.Causes {
		t.Run(string(cause), func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/cliniko_patient_import?patient_id=1", nil)
			r = r.WithContext(context.WithValue(r.Context(), ctxPractitioner, me))
			s.causeError(w, r, cause, "", "/again")
			body, _ := io.ReadAll(w.Result().Body)
			want, _ := causePage(cause, "", "/again")
			if w.Code != want {
				t.Errorf("status %d, want %d", w.Code, want)
			}
			if h := html.EscapeString(cause.Info().Clinician.Heading); !strings.Contains(string(body), "<h1>"+h+"</h1>") {
				t.Errorf("page lacks the heading %q:\n%s", h, body)
			}
		})
	}
}

// TestWaitingJSON: the waiting page's script gets the "still trying" words
// of exactly the causes that have them.
func TestWaitingJSON(t *testing.T) {
	t.Parallel()
	var got map[pmsbridge.Cause]struct{ Heading, Explain string }
	if err := json.Unmarshal([]byte(waitingJSON), &got); err != nil {
		t.Fatal(err)
	}
	for _, c := range pmsbridge.Causes {
		w := c.Info().Clinician.Waiting
		g, ok := got[c]
		switch {
		case w == nil && ok:
			t.Errorf("%s has waiting words in the script but not in the table", c)
		case w != nil && (!ok || g.Heading != w.Heading || g.Explain != strings.Join(w.Explain, " ")):
			t.Errorf("%s: script has %+v, table %+v", c, g, w)
		}
	}
	if len(got) == 0 {
		t.Error("no cause has waiting words: the waiting page could never say Cliniko is busy")
	}
}

// TestClinikoPatientID: the untrusted patient_id of a Cliniko button click.
func TestClinikoPatientID(t *testing.T) {
	t.Parallel()
	// query → the id it gives (leading zeros dropped), or → what the
	// problem says.
	valid := map[string]string{"patient_id=1001": "1001", "patient_id=836447129235883061": "836447129235883061",
		"patient_id=0042": "42", "patient_id=9223372036854775807": "9223372036854775807"}
	invalid := map[string]string{"": "no patient number", "patient_id=": "no patient number",
		"patient_id=1&patient_id=2": "more than one", "patient_id=12345678901234567890": "too long",
		"patient_id=12a": "not a number", "patient_id=-5": "not a number", "patient_id=1%2F..%2Fusers": "not a number",
		"patient_id=0": "not a valid Cliniko patient number", "patient_id=9223372036854775808": "not a valid Cliniko patient number"}
	check := func(query, want, problem string) {
		t.Helper()
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatal(err)
		}
		got, gotProblem := clinikoPatientID(q)
		if got != want || (problem == "") != (gotProblem == "") || !strings.Contains(gotProblem, problem) {
			t.Errorf("clinikoPatientID(%q) = %q, %q; want %q, a problem saying %q", query, got, gotProblem, want, problem)
		}
	}
	for query, want := range valid {
		check(query, want, "")
	}
	for query, problem := range invalid {
		check(query, "", problem)
	}
}
