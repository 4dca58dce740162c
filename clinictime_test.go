package pmsbridge

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestClinicTime shows the same instants to clinics in Auckland and
// Toronto, around each zone's change to and from summer time.
func TestClinicTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, zone, at                   string
		date, clock, dateTime, iso, abbr string
	}{
		// Pacific/Auckland: summer time starts Sun 27 Sep 2026 02:00 NZST → 03:00 NZDT.
		{"Auckland, last minute of winter time", "Pacific/Auckland", "2026-09-26T13:59:00Z", "27 Sep 2026", "01:59", "27 Sep 2026, 01:59", "2026-09-27", "NZST"},
		{"Auckland, first minute of summer time", "Pacific/Auckland", "2026-09-26T14:00:00Z", "27 Sep 2026", "03:00", "27 Sep 2026, 03:00", "2026-09-27", "NZDT"},
		// Summer time ends Sun 5 Apr 2026 03:00 NZDT → 02:00 NZST: 02:30 happens twice.
		{"Auckland, 02:30 the first time", "Pacific/Auckland", "2026-04-04T13:30:00Z", "5 Apr 2026", "02:30", "5 Apr 2026, 02:30", "2026-04-05", "NZDT"},
		{"Auckland, 02:30 the second time", "Pacific/Auckland", "2026-04-04T14:30:00Z", "5 Apr 2026", "02:30", "5 Apr 2026, 02:30", "2026-04-05", "NZST"},
		{"Auckland is already tomorrow", "Pacific/Auckland", "2026-11-30T14:02:00Z", "1 Dec 2026", "03:02", "1 Dec 2026, 03:02", "2026-12-01", "NZDT"},
		// America/Toronto: summer time starts Sun 8 Mar 2026 02:00 EST → 03:00 EDT.
		{"Toronto, last minute of winter time", "America/Toronto", "2026-03-08T06:59:00Z", "8 Mar 2026", "01:59", "8 Mar 2026, 01:59", "2026-03-08", "EST"},
		{"Toronto, first minute of summer time", "America/Toronto", "2026-03-08T07:00:00Z", "8 Mar 2026", "03:00", "8 Mar 2026, 03:00", "2026-03-08", "EDT"},
		// Summer time ends Sun 1 Nov 2026 02:00 EDT → 01:00 EST: 01:30 happens twice.
		{"Toronto, 01:30 the first time", "America/Toronto", "2026-11-01T05:30:00Z", "1 Nov 2026", "01:30", "1 Nov 2026, 01:30", "2026-11-01", "EDT"},
		{"Toronto, 01:30 the second time", "America/Toronto", "2026-11-01T06:30:00Z", "1 Nov 2026", "01:30", "1 Nov 2026, 01:30", "2026-11-01", "EST"},
		{"Toronto is still yesterday", "America/Toronto", "2026-11-30T03:02:00Z", "29 Nov 2026", "22:02", "29 Nov 2026, 22:02", "2026-11-29", "EST"},
		{"UTC", "UTC", "2026-11-30T14:02:00Z", "30 Nov 2026", "14:02", "30 Nov 2026, 14:02", "2026-11-30", "UTC"},
		{"a zone without an abbreviation", "America/Sao_Paulo", "2026-11-30T14:02:00Z", "30 Nov 2026", "11:02", "30 Nov 2026, 11:02", "2026-11-30", "UTC-3"},
		{"a zone with a quarter-hour offset", "Asia/Kathmandu", "2026-11-30T14:02:00Z", "30 Nov 2026", "19:47", "30 Nov 2026, 19:47", "2026-11-30", "UTC+5:45"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			c, err := LoadClinicTime(tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			at := utc(tt.at)
			got := []string{c.Date(at), c.Time(at), c.DateTime(at), c.ISODate(at), c.Zone(at), c.In(at).Location().String()}
			want := []string{tt.date, tt.clock, tt.dateTime, tt.iso, tt.abbr, tt.zone}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("[date time datetime iso zone location] (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClinicTimeEdges(t *testing.T) {
	t.Parallel()
	var zero ClinicTime
	at := utc("2026-11-30T14:02:00Z")
	if got := zero.DateTime(at) + " " + zero.Zone(at); got != "30 Nov 2026, 14:02 UTC" {
		t.Errorf("zero ClinicTime = %q, want UTC", got)
	}
	if zero.Location() != time.UTC || ClinicTimeIn(nil).Location() != time.UTC {
		t.Error("nil location is not UTC")
	}
	for _, f := range []func(time.Time) string{zero.Date, zero.Time, zero.DateTime, zero.ISODate} {
		if got := f(time.Time{}); got != "" {
			t.Errorf("the zero time is shown as %q, want nothing", got)
		}
	}
	days := []struct{ in, want string }{
		{"2026-11-30", "30 Nov 2026"}, {"2027-01-05", "5 Jan 2027"}, {"", ""}, {"30/11/2026", "30/11/2026"}, {"2026-02-30", "2026-02-30"},
	}
	for _, d := range days {
		if got := zero.Day(d.in); got != d.want {
			t.Errorf("Day(%q) = %q, want %q", d.in, got, d.want)
		}
	}
}

func TestLoadTimeZone(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"Australia/Sydney", "Pacific/Auckland", "America/Toronto", "Europe/Dublin", "Europe/London", "America/New_York", "UTC", "Etc/UTC"} {
		if loc, err := LoadTimeZone(ok); err != nil || loc.String() != ok {
			t.Errorf("LoadTimeZone(%q) = %v, %v", ok, loc, err)
		}
	}
	for _, bad := range []string{"", "Local", "Mars/Olympus_Mons", "australia sydney", " Europe/London", "../../etc/passwd", "AEDT+11"} {
		if _, err := LoadTimeZone(bad); !errors.Is(err, ErrUnknownTimeZone) {
			t.Errorf("LoadTimeZone(%q) err = %v, want ErrUnknownTimeZone", bad, err)
		}
		if _, err := LoadClinicTime(bad); !errors.Is(err, ErrUnknownTimeZone) {
			t.Errorf("LoadClinicTime(%q) err = %v, want ErrUnknownTimeZone", bad, err)
		}
	}
}

// TestClinicTimeAt: a time on the clinic's own today reads "at 14:02";
// another day (the clinic's, not UTC's) names the date.
func TestClinicTimeAt(t *testing.T) {
	t.Parallel()
	syd, err := LoadClinicTime("Australia/Sydney")
	if err != nil {
		t.Fatal(err)
	}
	now := utc("2026-11-30T03:00:00Z") // 14:00 AEDT on 30 Nov
	for _, tc := range []struct {
		desc, at, want string
	}{
		{"earlier the same clinic day", "2026-11-29T23:02:00Z", "at 10:02"},
		{"the same UTC day, the clinic's tomorrow", "2026-11-30T13:10:00Z", "on 1 Dec 2026 at 00:10"},
		{"the clinic's yesterday", "2026-11-29T12:00:00Z", "on 29 Nov 2026 at 23:00"},
	} {
		if got := syd.At(utc(tc.at), now); got != tc.want {
			t.Errorf("%s: At = %q, want %q", tc.desc, got, tc.want)
		}
	}
	if got := syd.At(time.Time{}, now); got != "" {
		t.Errorf("zero time: %q, want nothing", got)
	}
}
