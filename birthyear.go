package pmsbridge

import (
	"strings"
	"time"
)

// BirthYearStatus says how far a patient's year of birth can be trusted
// (birth_year_status in the patient JSON; part of the contract).
type BirthYearStatus string

// The birth-year states.
const (
	BirthYearOK       BirthYearStatus = "ok"       // a plausible year from a valid date, or set by hand
	BirthYearMissing  BirthYearStatus = "missing"  // Cliniko has no date of birth (null, "" or absent)
	BirthYearInvalid  BirthYearStatus = "invalid"  // Cliniko has something that is not a usable date; the raw value is kept
	BirthYearMismatch BirthYearStatus = "mismatch" // a year set by hand differs from Cliniko's
)

// BirthYearSource says where a patient's year of birth comes from
// (birth_year_source in the patient JSON).
type BirthYearSource string

// The birth-year sources.
const (
	BirthYearFromCliniko BirthYearSource = "cliniko" // read from Cliniko, kept up to date by the sync
	BirthYearManual      BirthYearSource = "manual"  // set by hand in the app; Cliniko never overwrites it
)

// BirthYear is what a Cliniko date_of_birth says about the year of birth.
type BirthYear struct {
	Year   int             // 0 unless Status is ok
	Status BirthYearStatus // ok, missing or invalid
	Raw    string          // the raw value when invalid (trimmed)
}

// ParseBirthYear reads Cliniko's date_of_birth (nil when null or absent).
// Cliniko sends dates as YYYY-MM-DD; anything else — "0000-00-00", a bare
// year, "03/07/1985", an impossible date, a year before 1900 or a date in
// the future (after now, in UTC) — is invalid and kept raw so a person can
// see it and set the year by hand.
func ParseBirthYear(raw *string, now time.Time) BirthYear {
	if raw == nil {
		return BirthYear{Status: BirthYearMissing}
	}
	s := strings.TrimSpace(*raw)
	if s == "" {
		return BirthYear{Status: BirthYearMissing}
	}
	invalid := BirthYear{Status: BirthYearInvalid, Raw: s}
	if len(s) > 10 && s[10] == 'T' { // a date-time: use its date
		s = s[:10]
	}
	if len(s) != 10 {
		return invalid
	}
	d, err := time.Parse("2006-01-02", s)
	if err != nil {
		return invalid
	}
	today := now.UTC().Truncate(24 * time.Hour)
	if d.Year() < 1900 || d.After(today) {
		return invalid
	}
	return BirthYear{Year: d.Year(), Status: BirthYearOK}
}
