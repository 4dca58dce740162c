package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/flows"
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
		pmsbridge.CauseInvalidPayload:      http.StatusServiceUnavailable,
		pmsbridge.CauseInternal:            http.StatusServiceUnavailable,
		pmsbridge.CauseNoContact:           http.StatusServiceUnavailable,
		pmsbridge.CauseDeliveryRejected:    http.StatusServiceUnavailable,
		pmsbridge.CauseDeliveryUnavailable: http.StatusServiceUnavailable,
		"from_a_newer_version":             http.StatusServiceUnavailable,
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

// TestAnswerFor: the one rule from errors to statuses; only errors of ours
// are logged (and answer 503 "try again").
func TestAnswerFor(t *testing.T) {
	t.Parallel()
	redisDown := fmt.Errorf("get patient pat_1: %w", errors.New("dial tcp 127.0.0.1:6379: connect: connection refused"))
	for _, tc := range []struct {
		desc string
		err  error
		want answer
	}{
		{"a refusal: bad input", &flows.Error{Code: flows.Invalid, Message: "Give the programme a title."}, answer{status: 422, text: "Give the programme a title."}},
		{"a refusal: does not fit", &flows.Error{Code: flows.Conflict, Message: "Already sent."}, answer{status: 409, text: "Already sent."}},
		{"a refusal: not found", &flows.Error{Code: flows.NotFound, Message: "no such patient"}, answer{status: 404, text: "no such patient"}},
		{"a refusal: stale signature", &flows.Error{Code: flows.Unauthorized, Message: "stale"}, answer{status: 401, text: "stale"}},
		{"a refusal wrapping the store's error", fmt.Errorf("assign: %w", &flows.Error{Code: flows.Invalid, Message: "m", Err: store.ErrConflict}), answer{status: 422, text: "m"}},
		{"a colleague's patient", &flows.NotSharedError{Owner: "Dr A"}, answer{status: 404, text: "no such patient"}},
		{"the owner-only rule", &flows.OwnerOnlyError{Owner: "Dr A"}, answer{status: 403, text: "only the patient's owner may do this"}},
		{"a form over its cap", &http.MaxBytesError{Limit: 10}, answer{status: 413, text: "The form sent more than pmsbridge accepts. Shorten what you typed and try again."}},
		{"a form that cannot be read", &badRequest{"The form could not be read."}, answer{status: 400, text: "The form could not be read."}},
		{"an import that failed: not in the account", &pmsbridge.Error{Cause: pmsbridge.CauseClinikoNotFound, Message: "x"}, answer{status: 404, cause: pmsbridge.CauseClinikoNotFound, text: "cliniko_not_found"}},
		{"no Cliniko key", &pmsbridge.Error{Cause: pmsbridge.CauseNoClinikoKey}, answer{status: 409, cause: pmsbridge.CauseNoClinikoKey, text: "no_cliniko_key"}},
		{"a Cliniko error", &cliniko.Error{Op: "get_user", Status: 503, Cause: pmsbridge.CauseClinikoUnavailable}, answer{status: 503, cause: pmsbridge.CauseClinikoUnavailable, text: "cliniko_unavailable"}},
		{"a failure with cause internal", &pmsbridge.Error{Cause: pmsbridge.CauseInternal}, answer{status: 503, cause: pmsbridge.CauseInternal, text: "internal"}},
		{"the store: not found", fmt.Errorf("x: %w", store.ErrNotFound), answer{status: 404, text: "not found"}},
		{"the store: invalid", fmt.Errorf("create practitioner: %w", store.ErrInvalid), answer{status: 422, text: "create practitioner: " + store.ErrInvalid.Error()}},
		{"the store: conflict", fmt.Errorf("create practitioner: %w", store.ErrConflict), answer{status: 409, text: "create practitioner: " + store.ErrConflict.Error()}},
		{"Redis unreachable", redisDown, answer{status: 503, text: "try again", ours: true}},
		{"the client hung up", context.Canceled, answer{status: 503, text: "try again", ours: true}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if d := cmp.Diff(tc.want, answerFor(tc.err), cmp.AllowUnexported(answer{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestErrorPages: Error renders each kind of error as its page, with the
// rule's status; only errors of ours are logged (with the request's id,
// from the logger in the context) and get Retry-After.
func TestErrorPages(t *testing.T) {
	t.Parallel()
	me := &store.Practitioner{ID: "prc_a", Name: "Dr Demo"}
	for _, tc := range []struct {
		desc     string
		err      error
		status   int
		location string // a redirect
		texts    []string
		logged   bool
	}{
		{"a refusal", &flows.Error{Code: flows.Conflict, Message: "This version is already in the patient's Cliniko files."}, 409, "", []string{"That did not work", "already in the patient&#39;s Cliniko files"}, false},
		{"not found", &flows.Error{Code: flows.NotFound, Message: "no such patient"}, 404, "", []string{"Page not found"}, false},
		{"a colleague's patient", &flows.NotSharedError{Owner: "Priya Raman"}, 404, "", []string{"This patient belongs to Priya Raman"}, false},
		{"another clinic's patient", &flows.NotSharedError{}, 404, "", []string{"This patient belongs to a colleague"}, false},
		{"the owner-only rule", &flows.OwnerOnlyError{Owner: "Priya Raman", PatientID: "pat_1"}, 403, "", []string{"Only Priya Raman can share or transfer this patient", "/patients/pat_1"}, false},
		{"a failed import, to try again", resumeAt(&pmsbridge.Error{Cause: pmsbridge.CauseClinikoUnavailable}, "/cliniko_patient_import?patient_id=7"), 503, "", []string{html.EscapeString(pmsbridge.CauseClinikoUnavailable.Info().Clinician.Heading), `href="/cliniko_patient_import?patient_id=7"`}, false},
		{"no key, back to the click after", resumeAt(&pmsbridge.Error{Cause: pmsbridge.CauseNoClinikoKey}, "/cliniko_patient_import?patient_id=7"), 303, "/settings/cliniko?need=key&next=%2Fcliniko_patient_import%3Fpatient_id%3D7", nil, false},
		{"no key on a form post", &pmsbridge.Error{Cause: pmsbridge.CauseNoClinikoKey}, 303, "/settings/cliniko?need=key", nil, false},
		{"ours", errors.New("redis: connection pool timeout"), 503, "", []string{html.EscapeString(pmsbridge.CauseInternal.Info().Clinician.Heading), "ref-1"}, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var logs strings.Builder
			s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/anywhere", nil)
			ctx := context.WithValue(r.Context(), ctxPractitioner, me)
			ctx = context.WithValue(ctx, ctxRequestID, "ref-1")
			ctx = pmsbridge.WithLogger(ctx, s.log.With("request_id", "ref-1"))
			s.Error(w, r.WithContext(ctx), tc.err)
			body, _ := io.ReadAll(w.Result().Body)
			if w.Code != tc.status || w.Header().Get("Location") != tc.location {
				t.Errorf("%d to %q, want %d to %q", w.Code, w.Header().Get("Location"), tc.status, tc.location)
			}
			for _, want := range tc.texts {
				if !strings.Contains(string(body), want) {
					t.Errorf("the page lacks %q:\n%s", want, body)
				}
			}
			logged := strings.Contains(logs.String(), "level=ERROR")
			if logged != tc.logged || logged && !strings.Contains(logs.String(), "request_id=ref-1") {
				t.Errorf("logged %v, want %v: %q", logged, tc.logged, logs.String())
			}
			if (w.Header().Get("Retry-After") != "") != tc.logged {
				t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
			}
		})
	}
}

// TestErrorJSON: the JSON side of the rule, with the webhook's extra
// field.
func TestErrorJSON(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		desc   string
		err    error
		fields []string
		status int
		want   map[string]string
	}{
		{"a colleague's patient is no patient", &flows.NotSharedError{Owner: "Dr A"}, nil, 404, map[string]string{"error": "no such patient"}},
		{"a webhook refusal", &flows.Error{Code: flows.Invalid, Message: "unknown patient"}, []string{"status", "rejected"}, 422, map[string]string{"status": "rejected", "error": "unknown patient"}},
		{"ours", errors.New("boom"), []string{"status", "rejected"}, 503, map[string]string{"status": "rejected", "error": "try again"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.errorJSON(w, httptest.NewRequest(http.MethodGet, "/api/x", nil), tc.err, tc.fields...)
			var got map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); w.Code != tc.status || d != "" {
				t.Errorf("%d, want %d; body (-want +got):\n%s", w.Code, tc.status, d)
			}
		})
	}
}

// TestNoKeyNotice: the patients page asks for a key in the cause table's
// words.
func TestNoKeyNotice(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/patients", nil)
	r = r.WithContext(context.WithValue(r.Context(), ctxPractitioner, &store.Practitioner{ID: "prc_a", Name: "Dr Demo"}))
	s.page(w, r, http.StatusOK, "patients", "Patients", patientsData{})
	body, _ := io.ReadAll(w.Result().Body)
	words := pmsbridge.CauseNoClinikoKey.Info().Clinician
	for _, want := range append([]string{words.Heading}, words.Explain...) {
		if !strings.Contains(string(body), html.EscapeString(want)) {
			t.Errorf("the notice lacks %q:\n%s", want, body)
		}
	}
}
