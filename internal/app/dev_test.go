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
	for _, want := range []string{m.URL(), app.DemoEmail, app.DemoPassword, m.Sandbox().URL(), "/admin/"} {
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
}
