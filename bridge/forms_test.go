package bridge

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/flows"
)

func form(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAssignForm: the assign form's fields, trimmed, with its catalogue ids
// in order; checking them is the flow's.
func TestAssignForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc, form string
		want       flows.Assignment
	}{
		{"a new programme", "title=+Knee+rehab+&exercise=ex_quad_set&exercise=ex_bridge&notes=%0Aslowly%0A",
			flows.Assignment{Title: "Knee rehab", Notes: "slowly", CatalogueIDs: []string{"ex_quad_set", "ex_bridge"}}},
		{"a new version, from a date", "programme_id=+prg_1+&title=Knee&exercise=ex_quad_set&starts_on=2026-11-22",
			flows.Assignment{ProgrammeID: "prg_1", Title: "Knee", StartsOn: "2026-11-22", CatalogueIDs: []string{"ex_quad_set"}}},
		{"doses of the chosen exercises only", "title=Knee&exercise=ex_quad_set&exercise=cur:0&sets.ex_quad_set=4&reps.ex_quad_set=&hold_seconds.cur:0=30&sets.ex_bridge=9",
			flows.Assignment{Title: "Knee", CatalogueIDs: []string{"ex_quad_set", "cur:0"},
				Doses: map[string]map[string]string{"ex_quad_set": {"sets": "4", "reps": ""}, "cur:0": {"hold_seconds": "30"}}}},
		{"nothing", "", flows.Assignment{}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if d := cmp.Diff(tc.want, parseAssignForm(form(t, tc.form))); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestShareAction: share is the default; anything but share or unshare is
// neither.
func TestShareAction(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]flows.ShareAction{
		"": flows.ShareOn, "action=share": flows.ShareOn, "action=unshare": flows.ShareOff,
		"action=give": flows.ShareUnknown, "action=Share": flows.ShareUnknown,
	} {
		if got := shareAction(form(t, q)); got != want {
			t.Errorf("shareAction(%q) = %v, want %v", q, got, want)
		}
	}
}

// TestBirthYearForm: a year (0 when it is no number, for the flow to
// refuse), or Cliniko's year back.
func TestBirthYearForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		form       string
		year       int
		useCliniko bool
	}{
		{"year=1985", 1985, false},
		{"year=+1985+", 1985, false},
		{"year=85a", 0, false},
		{"year=", 0, false},
		{"action=use_cliniko&year=1985", 0, true},
	} {
		year, useCliniko := birthYearForm(form(t, tc.form))
		if year != tc.year || useCliniko != tc.useCliniko {
			t.Errorf("birthYearForm(%q) = %d, %v; want %d, %v", tc.form, year, useCliniko, tc.year, tc.useCliniko)
		}
	}
}
