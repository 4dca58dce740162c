package pmsbridge

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Exercise is one exercise of a programme, with its dosage. ID is the catalogue
// id when the exercise came from the built-in catalogue, empty otherwise.
type Exercise struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// BodyRegion is the catalogue's group for the exercise (one of
	// BodyRegions); empty for exercises not from the catalogue.
	BodyRegion   string `json:"body_region,omitempty"`
	Instructions string `json:"instructions"`
	Sets         int    `json:"sets"`
	Reps         int    `json:"reps"`
	HoldSeconds  int    `json:"hold_seconds"`
	TimesPerDay  int    `json:"times_per_day"`
	DaysPerWeek  int    `json:"days_per_week"`
}

// Programme is one version of a home-exercise programme assigned to a patient.
// Every version of a programme shares its ID and Code; Version counts from 1.
type Programme struct {
	ID             string     `json:"id"`
	Version        int        `json:"version"`
	PatientID      string     `json:"patient_id"`
	PractitionerID string     `json:"practitioner_id"`
	Title          string     `json:"title"`
	StartsOn       string     `json:"starts_on"` // YYYY-MM-DD
	Notes          string     `json:"notes"`
	Exercises      []Exercise `json:"exercises"`
	Code           string     `json:"code"` // CodeLength lower-case letters, same for every version
	CreatedAt      time.Time  `json:"created_at"`
}

// CodeLength is the length of a programme access code: lower-case letters.
const CodeLength = 8

// ValidCode reports whether code has the form of an access code: the one
// rule that the store, the access page and the code email and text apply.
func ValidCode(code string) bool {
	if len(code) != CodeLength {
		return false
	}
	for i := range len(code) {
		if code[i] < 'a' || code[i] > 'z' {
			return false
		}
	}
	return true
}

// DoseField is one of an exercise's dose fields, with the range a
// programme may ask for. Zero means "not stated": the field is left off the
// patient's sheet (pdf.Dosage), so every field may be 0.
type DoseField struct {
	Key  string // the exercise's JSON field, also the form's: "sets", "hold_seconds"
	Name string // as the form and messages say it: "sets", "hold (seconds)"
	Max  int
	Get  func(e *Exercise) *int
}

// DoseFields are the dose fields of an exercise in the order forms show
// them. The ranges are what a home programme sensibly asks for; the
// webhook and the assign form are checked against the same ones
// (ExerciseProblems).
var DoseFields = []DoseField{
	{Key: "sets", Name: "sets", Max: 20, Get: func(e *Exercise) *int { return &e.Sets }},
	{Key: "reps", Name: "reps", Max: 100, Get: func(e *Exercise) *int { return &e.Reps }},
	{Key: "hold_seconds", Name: "hold (seconds)", Max: 600, Get: func(e *Exercise) *int { return &e.HoldSeconds }},
	{Key: "times_per_day", Name: "times a day", Max: 10, Get: func(e *Exercise) *int { return &e.TimesPerDay }},
	{Key: "days_per_week", Name: "days a week", Max: 7, Get: func(e *Exercise) *int { return &e.DaysPerWeek }},
}

// Limits on an exercise's text.
const (
	MaxExerciseName = 200
	MaxInstructions = 2000
)

// ExerciseProblems checks one exercise of a programme: a name, instructions
// of a sensible length and every dose within DoseFields' ranges. It says
// each problem in a sentence that names the exercise and the field, for
// example "Straight leg raise: sets must be from 0 to 20." It is the one
// check of exercises, for the assign form and the platform's webhook.
func ExerciseProblems(e Exercise) []string {
	name := strings.TrimSpace(e.Name)
	label := name
	if label == "" {
		label = "An exercise"
	}
	var out []string
	switch {
	case name == "":
		out = append(out, "Every exercise needs a name.")
	case utf8.RuneCountInString(name) > MaxExerciseName:
		out = append(out, fmt.Sprintf("%.40s…: the name is too long (at most %d characters).", label, MaxExerciseName))
	}
	if utf8.RuneCountInString(e.Instructions) > MaxInstructions {
		out = append(out, fmt.Sprintf("%s: the instructions are too long (at most %d characters).", label, MaxInstructions))
	}
	for _, f := range DoseFields {
		if v := *f.Get(&e); v < 0 || v > f.Max {
			out = append(out, fmt.Sprintf("%s: %s must be from 0 to %d.", label, f.Name, f.Max))
		}
	}
	return out
}
