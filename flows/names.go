package flows

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// titles are words before a name that say nothing about who it is.
var titles = map[string]bool{"dr": true, "mr": true, "mrs": true, "ms": true, "miss": true, "mx": true, "prof": true, "professor": true}

var fold = cases.Fold()

// nameWords are a name's words, case-folded, without accents, titles or
// punctuation.
func nameWords(s string) []string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(fold.String(s)) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		default:
			b.WriteByte(' ')
		}
	}
	var out []string
	for _, w := range strings.Fields(b.String()) {
		if !titles[w] {
			out = append(out, w)
		}
	}
	return out
}

// SameName reports whether two ways of writing a person's name name the
// same person, as far as text can tell: ignoring case, accents, titles
// ("Dr") and punctuation, every word of the shorter is in the longer
// ("Dr Demo Practitioner" and "Demo Practitioner"; "Zoë O'Brien" and "zoe
// o brien").
func SameName(a, b string) bool {
	wa, wb := nameWords(a), nameWords(b)
	if len(wa) == 0 || len(wb) == 0 {
		return false
	}
	if len(wa) > len(wb) {
		wa, wb = wb, wa
	}
	have := map[string]bool{}
	for _, w := range wb {
		have[w] = true
	}
	for _, w := range wa {
		if !have[w] {
			return false
		}
	}
	return true
}

// equalFold compares email addresses without regard to case.
func equalFold(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}
