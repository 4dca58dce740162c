package store

import "github.com/physitrack/pmsbridge"

// ApplyClinikoBirthYear takes Cliniko's reading of the date of birth into p.
// A year set by hand is never overwritten: when Cliniko's year differs, the
// state becomes mismatch and ClinikoYear keeps Cliniko's year so a person
// can choose it. A year that was read from Cliniko stays in use when
// Cliniko's date of birth later becomes unreadable or is removed: the state
// says so (invalid or missing, with the raw value) while the patient keeps
// opening their programmes with the last good year (KeptYear).
func (p *Patient) ApplyClinikoBirthYear(by pmsbridge.BirthYear) {
	if p.BirthYearSource == pmsbridge.BirthYearManual && p.YearOfBirth != 0 {
		if by.Status == pmsbridge.BirthYearOK && by.Year != p.YearOfBirth {
			p.BirthYearStatus = pmsbridge.BirthYearMismatch
			p.ClinikoYear = by.Year
		} else {
			p.BirthYearStatus = pmsbridge.BirthYearOK
			p.ClinikoYear = 0
		}
		return
	}
	kept := p.YearOfBirth
	if p.BirthYearSource != pmsbridge.BirthYearFromCliniko && p.BirthYearSource != "" {
		kept = 0
	}
	p.BirthYearSource = pmsbridge.BirthYearFromCliniko
	p.YearOfBirth = by.Year
	if by.Status != pmsbridge.BirthYearOK {
		p.YearOfBirth = kept
	}
	p.BirthYearStatus = by.Status
	p.BirthYearRaw = by.Raw
	p.ClinikoYear = 0
}

// SetManualYear records a year of birth set by hand in the app.
func (p *Patient) SetManualYear(year int) {
	p.YearOfBirth = year
	p.BirthYearSource = pmsbridge.BirthYearManual
	p.BirthYearStatus = pmsbridge.BirthYearOK
	p.BirthYearRaw = ""
	p.ClinikoYear = 0
}

// UseClinikoYear resolves a mismatch in Cliniko's favour: the year comes
// from Cliniko again and later syncs keep it up to date.
func (p *Patient) UseClinikoYear() bool {
	if p.BirthYearStatus != pmsbridge.BirthYearMismatch || p.ClinikoYear == 0 {
		return false
	}
	p.YearOfBirth = p.ClinikoYear
	p.BirthYearSource = pmsbridge.BirthYearFromCliniko
	p.BirthYearStatus = pmsbridge.BirthYearOK
	p.ClinikoYear = 0
	return true
}

// KeptYear reports whether the patient opens their programmes with a year
// Cliniko no longer gives: Cliniko's date of birth became unreadable or was
// removed after a good one was read, and that year stays in use until a
// person corrects Cliniko or sets the year here.
func (p Patient) KeptYear() bool {
	return p.YearOfBirth != 0 && p.BirthYearSource == pmsbridge.BirthYearFromCliniko &&
		(p.BirthYearStatus == pmsbridge.BirthYearMissing || p.BirthYearStatus == pmsbridge.BirthYearInvalid)
}
