package app_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
)

// wantKeys fails t unless the JSON object v has at least the keys of the
// contract (design.md: fields may be added, none removed).
func wantKeys(t *testing.T, what string, v any, keys ...string) {
	t.Helper()
	obj, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%s: not a JSON object: %v", what, v)
		return
	}
	for _, k := range keys {
		if _, ok := obj[k]; !ok {
			have := make([]string, 0, len(obj))
			for h := range obj {
				have = append(have, h)
			}
			slices.Sort(have)
			t.Errorf("%s: no %q field (has %s)", what, k, strings.Join(have, ", "))
		}
	}
}

func getJSON(t *testing.T, b *apptest.Browser, path string) map[string]any {
	t.Helper()
	r := b.Get(path)
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.Body), &doc); r.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET %s: %d %s", path, r.StatusCode, r.Body)
	}
	return doc
}

// TestContractJSONShapes: the import status and patient documents carry
// every field of their contract shape in every state, not only the fields
// that happen to have a value.
func TestContractJSONShapes(t *testing.T) {
	t.Parallel()
	e, _, b, pid := codesSetup(t) // codes by email and SMS; Priya has no Cliniko key
	importKeys := []string{"state", "patient_url", "cause", "message"}
	for _, tc := range []struct {
		desc string
		b    *apptest.Browser
		id   string
	}{
		{"done", b, sandbox.DemoPatientID},
		{"failed: no import on record", b, "987654"},
		{"failed: no Cliniko key", e.Login("priya@clinic.example"), sandbox.DemoPatientID},
	} {
		wantKeys(t, "import status "+tc.desc, getJSON(t, tc.b, "/imports/status?patient_id="+tc.id), importKeys...)
	}

	assignProgramme(t, b, pid, kneeForm("Knee rehab, week 1"))
	doc := getJSON(t, b, "/api/patients/"+pid)
	wantKeys(t, "patient", doc, "id", "first_name", "last_name", "email", "mobile", "year_of_birth", "birth_year_status",
		"birth_year_source", "owner", "cliniko", "programmes")
	wantKeys(t, "patient owner", doc["owner"], "id", "name")
	wantKeys(t, "patient cliniko", doc["cliniko"], "shard", "patient_id", "last_synced_at")
	progs, _ := doc["programmes"].([]any)
	if len(progs) != 1 {
		t.Fatalf("programmes: %v", doc["programmes"])
	}
	wantKeys(t, "programme", progs[0], "id", "version", "title", "code", "pdf", "code_delivery")
	wantKeys(t, "programme pdf", progs[0].(map[string]any)["pdf"], "state", "cause", "reason", "attachment_id")
	delivery, _ := progs[0].(map[string]any)["code_delivery"].([]any)
	if len(delivery) != 1 {
		t.Fatalf("code_delivery: %v, want the email of version 1", progs[0].(map[string]any)["code_delivery"])
	}
	wantKeys(t, "code_delivery entry", delivery[0], "channel", "state", "cause", "reason", "sent_at")

	// A patient the code cannot be sent to: an empty list, not null.
	_, giorgos := b.Open("836447129235882002")
	assignProgramme(t, b, giorgos, kneeForm("Balance"))
	progs, _ = getJSON(t, b, "/api/patients/"+giorgos)["programmes"].([]any)
	if len(progs) != 1 {
		t.Fatalf("programmes of the second patient: %v", progs)
	}
	if d, ok := progs[0].(map[string]any)["code_delivery"].([]any); !ok || len(d) != 0 {
		t.Errorf("code_delivery with no message: %#v, want []", progs[0].(map[string]any)["code_delivery"])
	}
}
