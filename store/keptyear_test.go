package store_test

import (
	"testing"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// TestKeptYear: a year read from Cliniko stays in use when Cliniko's date
// of birth becomes unreadable or is removed (flagged by the state), and a
// good date from Cliniko replaces it again.
func TestKeptYear(t *testing.T) {
	t.Parallel()
	p := store.Patient{}
	p.ApplyClinikoBirthYear(pmsbridge.BirthYear{Year: 1985, Status: pmsbridge.BirthYearOK})
	for _, by := range []pmsbridge.BirthYear{
		{Status: pmsbridge.BirthYearInvalid, Raw: "03/07/85"},
		{Status: pmsbridge.BirthYearMissing},
	} {
		p.ApplyClinikoBirthYear(by)
		if p.YearOfBirth != 1985 || p.BirthYearStatus != by.Status || p.BirthYearRaw != by.Raw || !p.KeptYear() {
			t.Errorf("after Cliniko's %+v: year %d, %s, raw %q, kept %v; want 1985 kept, %s", by, p.YearOfBirth, p.BirthYearStatus, p.BirthYearRaw, p.KeptYear(), by.Status)
		}
	}
	p.ApplyClinikoBirthYear(pmsbridge.BirthYear{Year: 1986, Status: pmsbridge.BirthYearOK})
	if p.YearOfBirth != 1986 || p.BirthYearStatus != pmsbridge.BirthYearOK || p.KeptYear() {
		t.Errorf("a good date again: %+v", p)
	}
	fresh := store.Patient{}
	fresh.ApplyClinikoBirthYear(pmsbridge.BirthYear{Status: pmsbridge.BirthYearInvalid, Raw: "x"})
	if fresh.YearOfBirth != 0 || fresh.KeptYear() {
		t.Errorf("a patient never with a year: %+v", fresh)
	}
}
