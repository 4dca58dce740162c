package pmsbridge

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// catalogueJSON is the built-in exercise catalogue, in the same shape that
// GET /api/exercises serves.
//
//go:embed catalogue.json
var catalogueJSON []byte

// BodyRegions are the body regions the catalogue is grouped by, in the
// order the exercise picker shows them (head to foot, then balance).
var BodyRegions = []string{"Neck", "Shoulder", "Back", "Hip", "Knee", "Ankle and foot", "Balance"}

// catalogue is parsed once at start. A bad catalogue.json is a build
// defect: the accessors panic with catalogueErr, and the catalogue's tests
// report it as a failure (they parse the bytes themselves).
var catalogue, catalogueIndex, catalogueErr = parseCatalogue(catalogueJSON)

var catalogueIDRe = regexp.MustCompile(`^ex_[a-z0-9_]+$`)

// parseCatalogue reads a catalogue document ({"exercises":[…]}, no unknown
// fields), checks every entry (an id like "ex_knee_bend", unique; a name; a
// known body region) and returns the exercises sorted by body region (in
// BodyRegions order) then name, with an index by id. Every problem is
// reported at once.
func parseCatalogue(b []byte) ([]Exercise, map[string]int, error) {
	var doc struct {
		Exercises []Exercise `json:"exercises"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("parse catalogue.json: %w", err)
	}
	var problems []string
	seen := map[string]bool{}
	for i, e := range doc.Exercises {
		switch {
		case !catalogueIDRe.MatchString(e.ID):
			problems = append(problems, fmt.Sprintf("exercise %d: id %q is not like ex_name", i, e.ID))
		case seen[e.ID]:
			problems = append(problems, fmt.Sprintf("exercise %d: duplicate id %q", i, e.ID))
		}
		seen[e.ID] = true
		if strings.TrimSpace(e.Name) == "" {
			problems = append(problems, fmt.Sprintf("exercise %q: no name", e.ID))
		}
		if !slices.Contains(BodyRegions, e.BodyRegion) {
			problems = append(problems, fmt.Sprintf("exercise %q: body_region %q is not one of %s", e.ID, e.BodyRegion, strings.Join(BodyRegions, ", ")))
		}
	}
	if len(doc.Exercises) == 0 {
		problems = append(problems, "no exercises")
	}
	if len(problems) > 0 {
		return nil, nil, errors.New("catalogue.json: " + strings.Join(problems, "; "))
	}
	slices.SortStableFunc(doc.Exercises, func(x, y Exercise) int {
		if c := slices.Index(BodyRegions, x.BodyRegion) - slices.Index(BodyRegions, y.BodyRegion); c != 0 {
			return c
		}
		return strings.Compare(strings.ToLower(x.Name), strings.ToLower(y.Name))
	})
	index := make(map[string]int, len(doc.Exercises))
	for i, e := range doc.Exercises {
		index[e.ID] = i
	}
	return doc.Exercises, index, nil
}

// mustCatalogue returns the parsed catalogue; a bad catalogue.json panics
// here (a build defect the tests catch).
func mustCatalogue() ([]Exercise, map[string]int) {
	if catalogueErr != nil {
		panic("pmsbridge: " + catalogueErr.Error())
	}
	return catalogue, catalogueIndex
}

// Catalogue returns the built-in exercises with their default dosage, in a
// stable order: by body region (BodyRegions order), then name. The slice is
// a copy: callers may change it freely.
func Catalogue() []Exercise {
	all, _ := mustCatalogue()
	return slices.Clone(all)
}

// CatalogueExercise returns the catalogue exercise with the given id, and
// whether there is one. Assigning a programme turns the posted ids into
// exercises with this.
func CatalogueExercise(id string) (Exercise, bool) {
	all, index := mustCatalogue()
	i, ok := index[id]
	if !ok {
		return Exercise{}, false
	}
	return all[i], true
}

// ExerciseGroup is the catalogue's exercises of one body region.
type ExerciseGroup struct {
	Region    string
	Exercises []Exercise
}

// CatalogueByRegion is the catalogue grouped by body region for the
// exercise picker: the regions in BodyRegions order (those with
// exercises), each with its exercises by name. Copies, like Catalogue.
func CatalogueByRegion() []ExerciseGroup {
	var out []ExerciseGroup
	for _, e := range Catalogue() {
		if n := len(out); n == 0 || out[n-1].Region != e.BodyRegion {
			out = append(out, ExerciseGroup{Region: e.BodyRegion})
		}
		g := &out[len(out)-1]
		g.Exercises = append(g.Exercises, e)
	}
	return out
}
