package pmsbridge

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// catalogueJSON is the built-in exercise catalogue, in the same shape that
// GET /api/exercises serves.
//
//go:embed catalogue.json
var catalogueJSON []byte

// catalogue is parsed once at start; a malformed file is a build defect, so
// it panics rather than returning an error on every call.
var catalogue, catalogueIndex = mustParseCatalogue(catalogueJSON)

func mustParseCatalogue(b []byte) ([]Exercise, map[string]int) {
	list, index, err := parseCatalogue(b)
	if err != nil {
		panic("pmsbridge: " + err.Error())
	}
	return list, index
}

// parseCatalogue reads a catalogue document and indexes it by id; ids must
// be unique, since assigning a programme turns posted ids into exercises.
func parseCatalogue(b []byte) ([]Exercise, map[string]int, error) {
	var doc struct {
		Exercises []Exercise `json:"exercises"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse catalogue.json: %w", err)
	}
	index := make(map[string]int, len(doc.Exercises))
	for i, e := range doc.Exercises {
		if _, dup := index[e.ID]; dup {
			return nil, nil, fmt.Errorf("catalogue.json: duplicate id %q", e.ID)
		}
		index[e.ID] = i
	}
	return doc.Exercises, index, nil
}

// Catalogue returns the built-in exercises with their default dosage, in a
// stable order (the order of catalogue.json). The slice is a copy: callers
// may change it freely.
func Catalogue() []Exercise {
	out := make([]Exercise, len(catalogue))
	copy(out, catalogue)
	return out
}

// CatalogueExercise returns the catalogue exercise with the given id, and
// whether there is one. Assigning a programme turns the posted ids into
// exercises with this.
func CatalogueExercise(id string) (Exercise, bool) {
	i, ok := catalogueIndex[id]
	if !ok {
		return Exercise{}, false
	}
	return catalogue[i], true
}
