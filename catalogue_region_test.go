package pmsbridge

import (
	"slices"
	"strings"
	"testing"
)

// TestCatalogueFile parses the embedded catalogue.json the way the package
// does, so a bad file fails here with its problems listed.
func TestCatalogueFile(t *testing.T) {
	all, index, err := parseCatalogue(catalogueJSON)
	if err != nil {
		t.Fatalf("catalogue.json: %v", err)
	}
	if len(all) != len(index) {
		t.Errorf("%d exercises, %d ids: ids are not unique", len(all), len(index))
	}
	for i, e := range all {
		if !slices.Contains(BodyRegions, e.BodyRegion) {
			t.Errorf("%s: body region %q is not one of %v", e.ID, e.BodyRegion, BodyRegions)
		}
		if index[e.ID] != i {
			t.Errorf("%s: index %d, want %d", e.ID, index[e.ID], i)
		}
		if i == 0 {
			continue
		}
		prev := all[i-1]
		ri, rp := slices.Index(BodyRegions, e.BodyRegion), slices.Index(BodyRegions, prev.BodyRegion)
		if ri < rp || (ri == rp && strings.ToLower(e.Name) < strings.ToLower(prev.Name)) {
			t.Errorf("%q (%s) comes after %q (%s): not by region, then name", e.Name, e.BodyRegion, prev.Name, prev.BodyRegion)
		}
	}
	if !slices.Equal(Catalogue(), all) {
		t.Error("Catalogue() is not the parsed catalogue")
	}
}

func TestCatalogueByRegion(t *testing.T) {
	t.Parallel()
	groups := CatalogueByRegion()
	var regions []string
	var flat []Exercise
	for _, g := range groups {
		if len(g.Exercises) == 0 {
			t.Errorf("region %s has no exercises", g.Region)
		}
		for _, e := range g.Exercises {
			if e.BodyRegion != g.Region {
				t.Errorf("%s (%s) is in the %s group", e.ID, e.BodyRegion, g.Region)
			}
		}
		regions = append(regions, g.Region)
		flat = append(flat, g.Exercises...)
	}
	// Every region of the catalogue has exercises today; the groups come in
	// BodyRegions order and hold every exercise once.
	if !slices.Equal(regions, BodyRegions) {
		t.Errorf("groups %v, want %v", regions, BodyRegions)
	}
	if !slices.Equal(flat, Catalogue()) {
		t.Error("the groups do not hold the catalogue, in order, each exercise once")
	}
	groups[0].Exercises[0].Name = "changed"
	if CatalogueByRegion()[0].Exercises[0].Name == "changed" {
		t.Error("CatalogueByRegion returns the catalogue itself, not a copy")
	}
}

// TestParseCatalogueChecks: the checks of parseCatalogue that
// TestParseCatalogue does not show (names, ids, body regions, unknown
// fields), and the order it gives.
func TestParseCatalogueChecks(t *testing.T) {
	t.Parallel()
	ex := func(id, name, region string) string {
		return `{"id":"` + id + `","name":"` + name + `","body_region":"` + region + `","instructions":"Do it. Slowly.","sets":1,"reps":1,"hold_seconds":0,"times_per_day":1,"days_per_week":1}`
	}
	doc := func(items ...string) []byte { return []byte(`{"exercises":[` + strings.Join(items, ",") + `]}`) }
	tests := []struct {
		desc    string
		in      []byte
		wantErr []string // every text must be in the error; none: no error
		wantIDs []string
	}{
		{desc: "sorted by region, then name", in: doc(ex("ex_c", "calf raise", "Ankle and foot"), ex("ex_b", "Bridge", "Hip"), ex("ex_a", "Clam", "Hip"), ex("ex_n", "Nod", "Neck")),
			wantIDs: []string{"ex_n", "ex_b", "ex_a", "ex_c"}},
		{desc: "unknown region", in: doc(ex("ex_a", "A", "Elbow")), wantErr: []string{`body_region "Elbow"`}},
		{desc: "no region", in: doc(ex("ex_a", "A", "")), wantErr: []string{`body_region ""`}},
		{desc: "region in other case", in: doc(ex("ex_a", "A", "knee")), wantErr: []string{`body_region "knee"`}},
		{desc: "no name", in: doc(ex("ex_a", " ", "Hip")), wantErr: []string{"no name"}},
		{desc: "bad id", in: doc(ex("knee bend", "A", "Knee")), wantErr: []string{`id "knee bend"`}},
		{desc: "every problem at once", in: doc(ex("ex_a", "", "Hip"), ex("ex_a", "B", "Wrist")), wantErr: []string{"no name", "duplicate", "Wrist"}},
		{desc: "unknown field", in: []byte(`{"exercises":[{"id":"ex_a","name":"A","body_region":"Hip","regoin":"x"}]}`), wantErr: []string{"regoin"}},
		{desc: "empty", in: []byte(`{"exercises":[]}`), wantErr: []string{"no exercises"}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			all, index, err := parseCatalogue(tt.in)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want one mentioning %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if all != nil || index != nil {
					t.Error("a bad catalogue returned exercises")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range all {
				ids = append(ids, e.ID)
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("order %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}
