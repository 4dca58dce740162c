package pmsbridge

import (
	"regexp"
	"strings"
	"testing"
)

func TestCatalogue(t *testing.T) {
	t.Parallel()
	all := Catalogue()
	if len(all) < 25 {
		t.Fatalf("catalogue has %d exercises, want at least 25", len(all))
	}
	idPattern := regexp.MustCompile(`^ex_[a-z0-9_]+$`)
	names := map[string]bool{}
	for _, e := range all {
		t.Run(e.ID, func(t *testing.T) {
			if !idPattern.MatchString(e.ID) {
				t.Errorf("id %q does not match %s", e.ID, idPattern)
			}
			if strings.TrimSpace(e.Name) == "" || names[e.Name] {
				t.Errorf("name %q is empty or repeated", e.Name)
			}
			names[e.Name] = true
			if n := strings.Count(e.Instructions, ". "); n < 1 || n > 3 || !strings.HasSuffix(e.Instructions, ".") {
				t.Errorf("instructions should be 2 to 4 full sentences: %q", e.Instructions)
			}
			checks := []struct {
				field    string
				got      int
				min, max int
			}{
				{"sets", e.Sets, 1, 10},
				{"reps", e.Reps, 1, 50},
				{"hold_seconds", e.HoldSeconds, 0, 120},
				{"times_per_day", e.TimesPerDay, 1, 6},
				{"days_per_week", e.DaysPerWeek, 1, 7},
			}
			for _, c := range checks {
				if c.got < c.min || c.got > c.max {
					t.Errorf("%s = %d, want %d..%d", c.field, c.got, c.min, c.max)
				}
			}
			got, ok := CatalogueExercise(e.ID)
			if !ok || got != e {
				t.Errorf("CatalogueExercise(%q) = %+v, %v; want %+v, true", e.ID, got, ok, e)
			}
		})
	}
}

func TestCatalogueIsACopy(t *testing.T) {
	t.Parallel()
	a := Catalogue()
	want := a[0].Name
	a[0].Name = "changed"
	if got := Catalogue()[0].Name; got != want {
		t.Errorf("Catalogue()[0].Name = %q after changing a copy, want %q", got, want)
	}
	if _, ok := CatalogueExercise("ex_no_such_exercise"); ok {
		t.Error("CatalogueExercise found an unknown id")
	}
}

// TestParseCatalogue: the checks that guard catalogue.json at start-up (a
// duplicate id would make assigning a programme ambiguous). The embedded
// file must pass them (the accessors panic otherwise); these cases show that
// they catch what they are for.
func TestParseCatalogue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		doc     string
		wantErr string
		wantLen int
	}{
		{desc: "two exercises", doc: `{"exercises":[{"id":"ex_a","name":"A","body_region":"Knee"},{"id":"ex_b","name":"B","body_region":"Knee"}]}`, wantLen: 2},
		{desc: "duplicate id", doc: `{"exercises":[{"id":"ex_a","name":"A","body_region":"Knee"},{"id":"ex_b","name":"B","body_region":"Knee"},{"id":"ex_a","name":"C","body_region":"Knee"}]}`, wantErr: `duplicate id "ex_a"`},
		{desc: "not JSON", doc: `{"exercises":[`, wantErr: "parse catalogue.json"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			list, index, err := parseCatalogue([]byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != tc.wantLen || len(index) != tc.wantLen {
				t.Errorf("%d exercises, %d indexed; want %d", len(list), len(index), tc.wantLen)
			}
			for id, i := range index {
				if list[i].ID != id {
					t.Errorf("index[%q] = %d, which is %q", id, i, list[i].ID)
				}
			}
		})
	}
	if _, _, err := parseCatalogue(catalogueJSON); err != nil {
		t.Errorf("the embedded catalogue: %v", err)
	}
}
