package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/cliniko/clinikotest"
	"github.com/physitrack/pmsbridge/internal/apptest"
)

func TestLoginClickImportPatientPage(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": clinikotest.DemoAdminKey})

	b := e.NewBrowser()
	r := b.Get("/cliniko_patient_import?patient_id=" + clinikotest.DemoPatientID)
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/login?next=") {
		t.Fatalf("no session: got %d to %q, want 303 to /login?next=…", r.StatusCode, r.Location())
	}
	next := r.Location()
	r = b.PostForm("/login", map[string][]string{"email": {"demo@clinic.example"}, "password": {apptest.Password}, "next": {"/cliniko_patient_import?patient_id=" + clinikotest.DemoPatientID}})
	if r.StatusCode != http.StatusSeeOther || r.Location() != "/cliniko_patient_import?patient_id="+clinikotest.DemoPatientID {
		t.Fatalf("login: got %d to %q (login page was %s)", r.StatusCode, r.Location(), next)
	}
	_, id := b.Open(clinikotest.DemoPatientID)
	if id == "" {
		t.Fatal("did not land on a patient page")
	}
	page := b.Get("/patients/" + id)
	if page.StatusCode != 200 || !strings.Contains(page.Body, "Zoë") || !strings.Contains(page.Body, "O&#39;Brien") {
		t.Fatalf("patient page: %d, body lacks the patient's name", page.StatusCode)
	}
	// A repeat click goes straight to the same patient.
	_, again := b.Open(clinikotest.DemoPatientID)
	if again != id {
		t.Fatalf("repeat click: got patient %q, want %q", again, id)
	}
}
