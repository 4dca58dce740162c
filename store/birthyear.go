package store

import "github.com/physitrack/pmsbridge"

// ApplyClinikoBirthYear takes Cliniko's reading of the date of birth into p.
// A year set by hand is never overwritten: when Cliniko's year differs, the
// state becomes mismatch and ClinikoYear keeps Cliniko's year so a person
// can choose it.
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
	p.BirthYearSource = pmsbridge.BirthYearFromCliniko
	p.YearOfBirth = by.Year
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
