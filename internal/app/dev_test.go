package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/app"
)

// TestDevModeZeroSetUp: `pmsbridge dev` needs nothing — embedded Redis,
// sandbox, demo data — serves /healthz, prints the URL and a login that
// works, and the demo practitioner can open a sandbox patient.
func TestDevModeZeroSetUp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	m, err := app.New(context.Background(), app.Options{Mode: app.ModeDev, Config: app.DevConfig("127.0.0.1:0"), Out: &out, LogOut: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(m.URL() + "/healthz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev mode did not serve /healthz within 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{m.URL(), app.DemoEmail, app.DemoPassword, m.Sandbox().URL(), "/admin/",
		m.URL() + app.DevEmailOutboxPath, m.URL() + app.DevSMSOutboxPath} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm(m.URL()+"/login", url.Values{"email": {app.DemoEmail}, "password": {app.DemoPassword},
		"next": {"/cliniko_patient_import?patient_id=" + sandbox.DemoPatientID}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/patients/pat_") || !strings.Contains(string(body), "Zoë") {
		t.Fatalf("demo login + open: status %d at %s", resp.StatusCode, resp.Request.URL)
	}

	// The codes of first versions reach the outboxes: Zoë's by email, 小明
	// 王's (a mobile, no email address) by SMS.
	for _, tc := range []struct {
		clinikoID, outbox string
		want              pmsbridge.Channel
	}{
		{sandbox.DemoPatientID, app.DevEmailOutboxPath, pmsbridge.ChannelEmail},
		{"836447129235882004", app.DevSMSOutboxPath, pmsbridge.ChannelSMS},
	} {
		// A click; a new patient may get the waiting page first.
		var patientID string
		for start := time.Now(); patientID == "" && time.Since(start) < 20*time.Second; {
			resp, err := c.Get(m.URL() + "/cliniko_patient_import?patient_id=" + tc.clinikoID)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if id, ok := strings.CutPrefix(resp.Request.URL.Path, "/patients/"); ok {
				patientID = id
			} else {
				time.Sleep(100 * time.Millisecond)
			}
		}
		prog, _, err := m.Store.CreateProgramme(ctx, pmsbridge.Programme{PatientID: patientID, PractitionerID: m.Demo().PractitionerID,
			Title: "Knee rehab", StartsOn: "2026-11-22"})
		if err != nil {
			t.Fatalf("patient %s (%q): %v", tc.clinikoID, patientID, err)
		}
		a, err := m.Codes.Assigned(ctx, prog)
		if err != nil || a.Message == nil || a.Message.Channel != tc.want {
			t.Fatalf("Assigned = %+v, %v; want %s", a, err, tc.want)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get(m.URL() + tc.outbox)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(page), prog.Code) && strings.Contains(string(page), "Demo Physio Clinic") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the code of %s never reached %s (status %d)", tc.clinikoID, tc.outbox, resp.StatusCode)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
