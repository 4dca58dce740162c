package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
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

// hookProgramme is data.programme of a programme.assigned event.
type hookProgramme struct {
	ID             string               `json:"id"`
	Version        int                  `json:"version"`
	PatientID      string               `json:"patient_id"`
	PractitionerID string               `json:"practitioner_id"`
	Title          string               `json:"title"`
	StartsOn       string               `json:"starts_on,omitempty"`
	Notes          string               `json:"notes"`
	Exercises      []pmsbridge.Exercise `json:"exercises"`
}

// hookEvent builds a webhook body; edit may change the programme.
func hookEvent(id, typ string, p hookProgramme) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "type": typ, "created_at": "2026-11-22T10:00:00Z",
		"data": map[string]any{"programme": p}})
	return b
}

var legRaise = pmsbridge.Exercise{Name: "Straight leg raise", Instructions: "Lie on your back, lift the straight leg.",
	Sets: 3, Reps: 10, HoldSeconds: 5, TimesPerDay: 2, DaysPerWeek: 5}

// postHook delivers a webhook body with a signature header value.
func postHook(b *apptest.Browser, body []byte, signature string) apptest.Response {
	h := http.Header{"Content-Type": {"application/json"}}
	if signature != "" {
		h.Set(bridge.SignatureHeader, signature)
	}
	return b.Do(http.MethodPost, "/webhooks/programmes", bytes.NewReader(body), h)
}

func hookStatus(t *testing.T, r apptest.Response) string {
	t.Helper()
	var v struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
		t.Fatalf("webhook answer is not JSON: %v: %q", err, r.Body)
	}
	return v.Status
}

func TestWebhookProgrammes(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey, "priya@clinic.example": ""})
	other := e.SeedClinic("Harbour Street Physiotherapy", map[string]string{"olivia@harbour.example": ""})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(sandbox.DemoPatientID)
	if pid == "" {
		t.Fatal("import failed")
	}
	demoID := clinic.Practitioners["demo@clinic.example"].ID
	priyaID := clinic.Practitioners["priya@clinic.example"].ID
	oliviaID := other.Practitioners["olivia@harbour.example"].ID
	// The pdf queue is paused so that what a request queued stays visible
	// and no worker calls Cliniko until the end.
	insp := e.Jobs.Inspector()
	if err := insp.PauseQueue(jobs.QueuePDF); err != nil {
		t.Fatal(err)
	}
	hook := e.NewBrowser() // the platform: no session
	sign := func(body []byte, at time.Time) string { return bridge.Sign(apptest.WebhookSecret, at, body) }
	prog := func(id string, v int) hookProgramme {
		return hookProgramme{ID: id, Version: v, PatientID: pid, PractitionerID: demoID, Title: "Knee rehab, week " + string(rune('0'+v)),
			StartsOn: "2026-11-22", Notes: "Stop if pain rises above 5/10.", Exercises: []pmsbridge.Exercise{legRaise}}
	}
	first := hookEvent("evt_8f2c", "programme.assigned", prog("prg_123", 1))

	var code string
	t.Run("accepted without calling Cliniko", func(t *testing.T) {
		before := e.Sandbox.Requests()
		r := postHook(hook, first, sign(first, time.Now()))
		if r.StatusCode != http.StatusAccepted || hookStatus(t, r) != "accepted" {
			t.Fatalf("got %d %s, want 202 accepted", r.StatusCode, r.Body)
		}
		if diff := cmp.Diff(before, e.Sandbox.Requests()); diff != "" {
			t.Errorf("the webhook request called Cliniko (-before +after):\n%s", diff)
		}
		ts := pdfTasks(t, e)
		if len(ts) != 1 || ts[0].ID != jobs.UploadTaskID("prg_123", 1) || ts[0].Type != jobs.TypeUploadPDF {
			t.Fatalf("queued pdf tasks: %v, want just pdf:prg_123:v1", taskIDs(ts))
		}
		if strings.Contains(string(ts[0].Payload), "Zo") || strings.Contains(string(ts[0].Payload), "Knee") {
			t.Errorf("task payload holds more than ids: %s", ts[0].Payload)
		}
		p, ok := programmeIn(patientDoc(t, b, pid), "prg_123", 1)
		if !ok || p.PDF.State != pmsbridge.PDFPending || !codeRe.MatchString(p.Code) {
			t.Fatalf("patient JSON: %+v (found %v), want prg_123 v1 pending with a code", p, ok)
		}
		code = p.Code
		// Accepted events are remembered for 30 days (the claim is short
		// until the programme is stored).
		if ttl := e.App.Redis().TTL(context.Background(), "pmsb:evt:programmes:evt_8f2c").Val(); ttl < 29*24*time.Hour {
			t.Errorf("accepted event kept for %s, want about 30 days", ttl)
		}
	})

	t.Run("duplicates", func(t *testing.T) {
		for _, tc := range []struct {
			desc string
			at   time.Time
		}{
			{"same event again", time.Now()},
			{"same event id with a stale signature time", time.Now().Add(-time.Hour)},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				r := postHook(hook, first, sign(first, tc.at))
				if r.StatusCode != http.StatusOK || hookStatus(t, r) != "duplicate" {
					t.Fatalf("got %d %s, want 200 duplicate", r.StatusCode, r.Body)
				}
				if ts := pdfTasks(t, e); len(ts) != 1 {
					t.Errorf("pdf tasks: %v, want the one task", taskIDs(ts))
				}
			})
		}
	})

	big := append([]byte(`{"id":"evt_big","type":"programme.assigned","pad":"`), bytes.Repeat([]byte("x"), 1<<20)...)
	big = append(big, `"}`...)
	bad := func(edit func(*hookProgramme)) hookProgramme {
		p := prog("prg_bad", 1)
		edit(&p)
		return p
	}
	rejections := []struct {
		desc   string
		body   []byte
		sig    func(body []byte) string
		status int
		progID string // must not be stored
		ver    int
	}{
		{"bad signature", hookEvent("evt_r1", "programme.assigned", prog("prg_r1", 1)),
			func(b []byte) string { return bridge.Sign("not-the-secret-0123456789", time.Now(), b) }, 401, "prg_r1", 1},
		{"no signature", hookEvent("evt_r2", "programme.assigned", prog("prg_r2", 1)),
			func([]byte) string { return "" }, 401, "prg_r2", 1},
		{"signature of another body", hookEvent("evt_r3", "programme.assigned", prog("prg_r3", 1)),
			func([]byte) string { return sign([]byte(`{"id":"evt_r3"}`), time.Now()) }, 401, "prg_r3", 1},
		{"garbled signature header", hookEvent("evt_r4", "programme.assigned", prog("prg_r4", 1)),
			func([]byte) string { return "t=abc,v1=zz" }, 401, "prg_r4", 1},
		{"stale timestamp", hookEvent("evt_r5", "programme.assigned", prog("prg_r5", 1)),
			func(b []byte) string { return sign(b, time.Now().Add(-5*time.Minute-30*time.Second)) }, 401, "prg_r5", 1},
		{"timestamp in the future", hookEvent("evt_r6", "programme.assigned", prog("prg_r6", 1)),
			func(b []byte) string { return sign(b, time.Now().Add(6*time.Minute)) }, 401, "prg_r6", 1},
		{"body over 1 MiB", big, func(b []byte) string { return sign(b, time.Now()) }, 413, "", 0},
		{"malformed JSON", []byte(`{"id":"evt_r8","type":`), func(b []byte) string { return sign(b, time.Now()) }, 400, "", 0},
		{"two JSON documents", append(hookEvent("evt_r9", "programme.assigned", prog("prg_r9", 1)), `{}`...),
			func(b []byte) string { return sign(b, time.Now()) }, 400, "prg_r9", 1},
		{"unknown patient", hookEvent("evt_r10", "programme.assigned", bad(func(p *hookProgramme) { p.PatientID = "pat_doesnotexist" })),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_bad", 1},
		{"unknown practitioner", hookEvent("evt_r11", "programme.assigned", bad(func(p *hookProgramme) { p.PractitionerID = "prac_doesnotexist" })),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_bad", 1},
		{"colleague the patient is not shared with", hookEvent("evt_r12", "programme.assigned", bad(func(p *hookProgramme) { p.PractitionerID = priyaID })),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_bad", 1},
		{"practitioner of another clinic", hookEvent("evt_r13", "programme.assigned", bad(func(p *hookProgramme) { p.PractitionerID = oliviaID })),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_bad", 1},
		{"version gap", hookEvent("evt_r14", "programme.assigned", prog("prg_123", 3)),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_123", 3},
		{"new programme starting at version 2", hookEvent("evt_r15", "programme.assigned", prog("prg_new", 2)),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_new", 2},
		{"unknown event type", hookEvent("evt_r16", "programme.deleted", prog("prg_r16", 1)),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_r16", 1},
		{"no exercises", hookEvent("evt_r17", "programme.assigned", bad(func(p *hookProgramme) { p.Exercises = nil })),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_bad", 1},
		{"impossible dosage", hookEvent("evt_r18", "programme.assigned", bad(func(p *hookProgramme) { p.Exercises[0].DaysPerWeek = 9 })),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_bad", 1},
		{"no title", hookEvent("evt_r19", "programme.assigned", bad(func(p *hookProgramme) { p.Title = " " })),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_bad", 1},
		{"bad programme id", hookEvent("evt_r20", "programme.assigned", bad(func(p *hookProgramme) { p.ID = "prg 1/../x" })),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "", 0},
		{"no event id", hookEvent("", "programme.assigned", prog("prg_r21", 1)),
			func(b []byte) string { return sign(b, time.Now()) }, 422, "prg_r21", 1},
	}
	t.Run("rejections queue and store nothing", func(t *testing.T) {
		for _, tc := range rejections {
			t.Run(tc.desc, func(t *testing.T) {
				before, progs := pdfProcessed(t, e), len(patientDoc(t, b, pid).Programmes)
				r := postHook(hook, tc.body, tc.sig(tc.body))
				if r.StatusCode != tc.status {
					t.Fatalf("got %d %s, want %d", r.StatusCode, r.Body, tc.status)
				}
				if tc.status != http.StatusRequestEntityTooLarge && hookStatus(t, r) != "rejected" {
					t.Errorf("status field of %s, want rejected", r.Body)
				}
				if ts := pdfTasks(t, e); len(ts) != 1 || pdfProcessed(t, e) != before {
					t.Errorf("pdf tasks after a rejection: %v", taskIDs(ts))
				}
				if n := len(patientDoc(t, b, pid).Programmes); n != progs {
					t.Errorf("patient has %d programme versions, had %d", n, progs)
				}
				if tc.progID != "" {
					if _, err := e.Store.GetProgramme(t.Context(), tc.progID, tc.ver); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("programme %s v%d was stored (%v)", tc.progID, tc.ver, err)
					}
				}
			})
		}
	})

	t.Run("a rejected event can be delivered again", func(t *testing.T) {
		body := rejections[4].body // rejected as stale above
		r := postHook(hook, body, sign(body, time.Now()))
		if r.StatusCode != http.StatusAccepted {
			t.Fatalf("redelivery of evt_r5 with a fresh signature: %d %s, want 202", r.StatusCode, r.Body)
		}
	})

	t.Run("new version keeps the code", func(t *testing.T) {
		body := hookEvent("evt_9a1d", "programme.assigned", prog("prg_123", 2))
		r := postHook(hook, body, sign(body, time.Now()))
		if r.StatusCode != http.StatusAccepted || hookStatus(t, r) != "accepted" {
			t.Fatalf("got %d %s", r.StatusCode, r.Body)
		}
		p, ok := programmeIn(patientDoc(t, b, pid), "prg_123", 2)
		if !ok || p.Code != code {
			t.Errorf("version 2: %+v, want code %q", p, code)
		}
	})

	if err := insp.UnpauseQueue(jobs.QueuePDF); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		id string
		n  int
	}{{"prg_123", 1}, {"prg_123", 2}, {"prg_r5", 1}} {
		waitPDFState(t, e, b, pid, v.id, v.n, pmsbridge.PDFUploaded)
	}
	atts := stillExactly(t, e, sandbox.DemoPatientID, 3)
	for _, a := range atts {
		if strings.Contains(a.Description, "prg_123") && !strings.Contains(normSpace(pdfText(t, a.Content)), code) {
			t.Errorf("attachment %q lacks the programme's code %q", a.Description, code)
		}
	}
}

func taskIDs(ts []*asynq.TaskInfo) []string {
	var out []string
	for _, x := range ts {
		out = append(out, x.ID)
	}
	return out
}

// TestWebhookCallerHangsUp: a platform that gives up on a delivery (closes
// the connection while pmsbridge works on it) and delivers the event again
// must not lose it: once an event id is claimed, its programme is saved and
// queued even though nobody waits for the answer, so a redelivery that
// hears "duplicate" is telling the truth.
func TestWebhookCallerHangsUp(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(sandbox.DemoPatientID)
	if pid == "" {
		t.Fatal("import failed")
	}
	demoID := clinic.Practitioners["demo@clinic.example"].ID
	u, _ := url.Parse(e.URL)
	for i := range 20 {
		progID := fmt.Sprintf("prg_gone%d", i)
		body := hookEvent(fmt.Sprintf("evt_gone%d", i), "programme.assigned", hookProgramme{ID: progID, Version: 1, PatientID: pid,
			PractitionerID: demoID, Title: "Knee rehab", StartsOn: "2026-11-22", Exercises: []pmsbridge.Exercise{legRaise}})
		// Send the whole request, then hang up without reading the answer.
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		var req bytes.Buffer
		fmt.Fprintf(&req, "POST /webhooks/programmes HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s: %s\r\nContent-Length: %d\r\n\r\n%s",
			u.Host, bridge.SignatureHeader, bridge.Sign(apptest.WebhookSecret, time.Now(), body), len(body), body)
		if _, err := c.Write(req.Bytes()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
		c.Close()

		r := postHook(e.NewBrowser(), body, bridge.Sign(apptest.WebhookSecret, time.Now(), body))
		if st := hookStatus(t, r); r.StatusCode != http.StatusAccepted && (r.StatusCode != http.StatusOK || st != "duplicate") {
			t.Fatalf("redelivery %d: %d %s, want 202 accepted or 200 duplicate", i, r.StatusCode, r.Body)
		}
		e.Eventually("programme "+progID+" of a delivery whose caller hung up", func() bool {
			_, err := e.Store.GetProgramme(t.Context(), progID, 1)
			return err == nil
		})
	}
}

// TestWebhookUnreadableRecordIsRetryable: when the patient's record cannot
// be read, the event is refused with 503 (the platform delivers it again),
// not 422 as if the sender had named an unknown patient; once the record
// reads again, the redelivery is accepted.
func TestWebhookUnreadableRecordIsRetryable(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": sandbox.DemoAdminKey})
	b := e.Login("demo@clinic.example")
	_, pid := b.Open(sandbox.DemoPatientID)
	if pid == "" {
		t.Fatal("import failed")
	}
	rdb, key := e.App.Redis(), "pmsb:pat:"+pid
	saved, err := rdb.Get(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(t.Context(), key, "{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	body := hookEvent("evt_unreadable", "programme.assigned", hookProgramme{ID: "prg_unreadable", Version: 1, PatientID: pid,
		PractitionerID: clinic.Practitioners["demo@clinic.example"].ID, Title: "Knee rehab", StartsOn: "2026-11-22", Exercises: []pmsbridge.Exercise{legRaise}})
	hook := e.NewBrowser()
	if r := postHook(hook, body, bridge.Sign(apptest.WebhookSecret, time.Now(), body)); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("unreadable patient record: %d %s, want 503", r.StatusCode, r.Body)
	}
	if err := rdb.Set(t.Context(), key, saved, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if r := postHook(hook, body, bridge.Sign(apptest.WebhookSecret, time.Now(), body)); r.StatusCode != http.StatusAccepted {
		t.Errorf("redelivery once the record reads: %d %s, want 202", r.StatusCode, r.Body)
	}
}
