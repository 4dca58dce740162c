package jobs

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/store"
)

// What is kept of a Cliniko patient's fields. Cliniko bounds none of them;
// the store keeps at most store.MaxPatientFieldBytes a field, and the
// pages and the PDF show names in one line.
const (
	maxNameRunes         = 100
	maxGenderRunes       = 60
	maxRawBirthDateRunes = 60
	maxEmailBytes        = 254 // RFC 5321's limit on an address
	maxPhoneRunes        = 32  // E.164 is 15 digits; room for spaces, +, ( ) and an extension
)

// ellipsis ends a field that was cut short.
const ellipsis = "…"

// cleanText makes a text field from Cliniko fit to keep and show: invalid
// UTF-8 becomes U+FFFD, line breaks and tabs become spaces, other control
// characters and the invisible characters that reorder text (bidi
// overrides and isolates) go, runs of spaces become one, and a field
// longer than maxRunes runes (or the store's byte bound) is cut on a rune
// boundary and ends with "…", so it stays readable.
func cleanText(s string, maxRunes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' || r == '\u2028' || r == '\u2029' || unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r), r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f', r == '\ufeff':
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return truncate(b.String(), maxRunes, store.MaxPatientFieldBytes)
}

// truncate cuts s to at most maxRunes runes and maxBytes bytes, on a rune
// boundary, ending with the ellipsis when it cut.
func truncate(s string, maxRunes, maxBytes int) string {
	if utf8.RuneCountInString(s) <= maxRunes && len(s) <= maxBytes {
		return s
	}
	budget := maxBytes - len(ellipsis)
	n, end := 0, 0
	for i, r := range s {
		if n == maxRunes-1 || i+utf8.RuneLen(r) > budget {
			break
		}
		n++
		end = i + utf8.RuneLen(r)
	}
	return strings.TrimRight(s[:end], " ") + ellipsis
}

// cleanEmail keeps an address only if it can be one: at most 254 bytes,
// one @ with text on both sides, no spaces or control characters. A bad
// one is dropped ("": no email), never shortened: a shortened address is
// someone else's.
func cleanEmail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxEmailBytes || !utf8.ValidString(s) || strings.Count(s, "@") != 1 {
		return ""
	}
	local, domain, _ := strings.Cut(s, "@")
	if local == "" || domain == "" || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return ""
	}
	return s
}

// usableMobile picks the patient's first usable "Mobile" number, else the
// first usable number of any type (as cliniko.Patient.Mobile does). A
// number is usable when, cleaned, it has a digit and at most 32
// characters; one too long to be real is skipped, not shortened (a
// shortened number texts someone else).
func usableMobile(phones []cliniko.Phone) string {
	usable := func(n string) string {
		n = cleanText(n, maxPhoneRunes+1)
		if n == "" || utf8.RuneCountInString(n) > maxPhoneRunes || strings.HasSuffix(n, ellipsis) || strings.IndexFunc(n, unicode.IsDigit) < 0 {
			return ""
		}
		return n
	}
	for _, p := range phones {
		if strings.EqualFold(strings.TrimSpace(p.Type), "Mobile") {
			if n := usable(p.Number); n != "" {
				return n
			}
		}
	}
	for _, p := range phones {
		if n := usable(p.Number); n != "" {
			return n
		}
	}
	return ""
}
