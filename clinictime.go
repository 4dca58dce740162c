package pmsbridge

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Clinic time: every time and date that a clinic's practitioners and
// patients see is shown in the clinic's (the subscription's) time zone, in
// one format, by a ClinicTime. Times are stored and sent in UTC; only what
// people read is converted.

// Layouts of what people read.
const (
	// DateLayout is a date: "30 Nov 2026", "1 Dec 2026".
	DateLayout = "2 Jan 2006"
	// TimeLayout is a time of day on the 24-hour clock: "14:02".
	TimeLayout = "15:04"
	// DateTimeLayout is both: "30 Nov 2026, 14:02".
	DateTimeLayout = DateLayout + ", " + TimeLayout
	// ISODateLayout is a calendar date in forms and JSON: "2026-11-30".
	ISODateLayout = "2006-01-02"
)

// ErrUnknownTimeZone is returned for a name that is not an IANA time zone.
var ErrUnknownTimeZone = errors.New("unknown time zone")

// LoadTimeZone loads an IANA time-zone name ("Australia/Sydney"), the only
// kind a clinic may have. It refuses "", "Local" (the server's own zone,
// which says nothing about the clinic) and anything not in the time-zone
// database, with an error wrapping ErrUnknownTimeZone. The programs embed
// the database (time/tzdata), so this does not depend on the machine.
func LoadTimeZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" || len(name) > 64 || strings.TrimSpace(name) != name {
		return nil, fmt.Errorf("%w %q: use an IANA name such as Australia/Sydney", ErrUnknownTimeZone, name)
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%w %q: use an IANA name such as Australia/Sydney", ErrUnknownTimeZone, name)
	}
	zones.Store(name, loc)
	return loc, nil
}

// zones caches loaded zones by name: time.LoadLocation reads and parses the
// database on every call, and pages format times on every request. Only
// names that loaded are kept (a few hundred at most).
var zones sync.Map

// ClinicTime formats times for the people of one clinic, in its time zone.
// The zero value formats in UTC. It is a small value: pass it by value
// (for example into a page's template data).
type ClinicTime struct {
	loc *time.Location
}

// ClinicTimeIn returns the formatter for a time zone (nil: UTC).
func ClinicTimeIn(loc *time.Location) ClinicTime { return ClinicTime{loc: loc} }

// LoadClinicTime returns the formatter for an IANA time-zone name (see
// LoadTimeZone).
func LoadClinicTime(name string) (ClinicTime, error) {
	loc, err := LoadTimeZone(name)
	if err != nil {
		return ClinicTime{}, err
	}
	return ClinicTime{loc: loc}, nil
}

// Location is the clinic's time zone.
func (c ClinicTime) Location() *time.Location {
	if c.loc == nil {
		return time.UTC
	}
	return c.loc
}

// In returns t in the clinic's time zone.
func (c ClinicTime) In(t time.Time) time.Time { return t.In(c.Location()) }

// format formats t in the clinic's zone; "" for the zero time (nothing to
// show, rather than "1 Jan 0001").
func (c ClinicTime) format(t time.Time, layout string) string {
	if t.IsZero() {
		return ""
	}
	return t.In(c.Location()).Format(layout)
}

// Date is t's date in the clinic: "30 Nov 2026".
func (c ClinicTime) Date(t time.Time) string { return c.format(t, DateLayout) }

// Time is t's time of day in the clinic: "14:02".
func (c ClinicTime) Time(t time.Time) string { return c.format(t, TimeLayout) }

// DateTime is t's date and time in the clinic: "30 Nov 2026, 14:02".
func (c ClinicTime) DateTime(t time.Time) string { return c.format(t, DateTimeLayout) }

// ISODate is t's date in the clinic as YYYY-MM-DD, for date fields (a
// programme's start date defaults to the clinic's today, not UTC's).
func (c ClinicTime) ISODate(t time.Time) string { return c.format(t, ISODateLayout) }

// Zone is the short name of the clinic's zone at t, which tells summer from
// winter time: "NZDT", "EST", "AEDT", "GMT". Zones whose database has no
// abbreviation get their offset: "UTC+4", "UTC-3", "UTC+5:45".
func (c ClinicTime) Zone(t time.Time) string {
	name, offset := t.In(c.Location()).Zone()
	if name != "" && name[0] != '+' && name[0] != '-' {
		return name
	}
	sign := "+"
	if offset < 0 {
		sign, offset = "-", -offset
	}
	h, m := offset/3600, offset%3600/60
	if m == 0 {
		return fmt.Sprintf("UTC%s%d", sign, h)
	}
	return fmt.Sprintf("UTC%s%d:%02d", sign, h, m)
}

// Day formats a calendar date given as YYYY-MM-DD (a programme's start date,
// which has no time zone) like Date: "2026-11-30" → "30 Nov 2026". Anything
// else is returned as it is.
func (c ClinicTime) Day(iso string) string {
	d, err := time.Parse(ISODateLayout, iso)
	if err != nil {
		return iso
	}
	return d.Format(DateLayout)
}

// At says when t is for a sentence, in the clinic, next to now: "at 14:02"
// on the clinic's same day as now, else "on 30 Nov 2026 at 14:02"; "" for
// the zero time. ("Sent to z***@example.com at 14:02", "You can send it
// again at 15:10".)
func (c ClinicTime) At(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	if c.Date(t) == c.Date(now) {
		return "at " + c.Time(t)
	}
	return "on " + c.Date(t) + " at " + c.Time(t)
}
