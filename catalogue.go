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
	var doc struct {
		Exercises []Exercise `json:"exercises"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		panic(fmt.Sprintf("pmsbridge: parse catalogue.json: %v", err))
	}
	index := make(map[string]int, len(doc.Exercises))
	for i, e := range doc.Exercises {
		if _, dup := index[e.ID]; dup {
			panic(fmt.Sprintf("pmsbridge: catalogue.json: duplicate id %q", e.ID))
		}
		index[e.ID] = i
	}
	return doc.Exercises, index
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
