package pdf

import (
	"strconv"
	"strings"

	"github.com/physitrack/pmsbridge"
)

// Dosage describes how much of an exercise to do, in words a patient reads
// easily, for example "3 sets of 10 repetitions, hold each for 5 seconds,
// twice a day, 5 days a week". Zero fields are left out; it returns "" when
// every field is zero.
func Dosage(e pmsbridge.Exercise) string {
	var parts []string
	var first string
	switch {
	case e.Sets > 0 && e.Reps > 0:
		first = pmsbridge.Count(e.Sets, "set", "sets") + " of " + pmsbridge.Count(e.Reps, "repetition", "repetitions")
	case e.Sets > 0:
		first = pmsbridge.Count(e.Sets, "set", "sets")
	case e.Reps > 0:
		first = pmsbridge.Count(e.Reps, "repetition", "repetitions")
	}
	if first != "" {
		parts = append(parts, first)
	}
	if e.HoldSeconds > 0 {
		hold := "hold for "
		if e.Reps > 1 || e.Sets > 1 {
			hold = "hold each for "
		}
		parts = append(parts, hold+pmsbridge.Count(e.HoldSeconds, "second", "seconds"))
	}
	switch e.TimesPerDay {
	case 0:
	case 1:
		parts = append(parts, "once a day")
	case 2:
		parts = append(parts, "twice a day")
	default:
		parts = append(parts, strconv.Itoa(e.TimesPerDay)+" times a day")
	}
	switch {
	case e.DaysPerWeek >= 7:
		parts = append(parts, "every day")
	case e.DaysPerWeek == 1:
		parts = append(parts, "1 day a week")
	case e.DaysPerWeek > 1:
		parts = append(parts, strconv.Itoa(e.DaysPerWeek)+" days a week")
	}
	s := strings.Join(parts, ", ")
	if s != "" {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}
