package pmsbridge

import "time"

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
	Code           string     `json:"code"` // 8 lower-case letters, same for every version
	CreatedAt      time.Time  `json:"created_at"`
}
