package pmsbridge_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
)

func str(s string) *string { return &s }

func TestParseBirthYear(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ok := func(y int) pmsbridge.BirthYear { return pmsbridge.BirthYear{Year: y, Status: pmsbridge.BirthYearOK} }
	inv := func(raw string) pmsbridge.BirthYear {
		return pmsbridge.BirthYear{Status: pmsbridge.BirthYearInvalid, Raw: raw}
	}
	missing := pmsbridge.BirthYear{Status: pmsbridge.BirthYearMissing}
	tests := []struct {
		desc string
		in   *string
		want pmsbridge.BirthYear
	}{
		{"a date", str("1985-03-07"), ok(1985)},
		{"null", nil, missing},
		{"empty string", str(""), missing},
		{"only whitespace", str("   "), missing},
		{"whitespace around a date", str(" 1990-02-14\n"), ok(1990)},
		{"zero date", str("0000-00-00"), inv("0000-00-00")},
		{"bare year", str("1985"), inv("1985")},
		{"day/month/year", str("03/07/1985"), inv("03/07/1985")},
		{"future date", str("2030-01-01"), inv("2030-01-01")},
		{"tomorrow", str("2026-11-23"), inv("2026-11-23")},
		{"today (a newborn)", str("2026-11-22"), ok(2026)},
		{"before 1900", str("1899-12-31"), inv("1899-12-31")},
		{"1900", str("1900-01-01"), ok(1900)},
		{"leap day in a leap year", str("2000-02-29"), ok(2000)},
		{"leap day in a common year", str("1999-02-29"), inv("1999-02-29")},
		{"month 13", str("1985-13-01"), inv("1985-13-01")},
		{"date-time", str("1985-03-07T00:00:00Z"), ok(1985)},
		{"garbage", str("unknown"), inv("unknown")},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			if d := cmp.Diff(tc.want, pmsbridge.ParseBirthYear(tc.in, now)); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}
