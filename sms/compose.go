package sms

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf16"

	"github.com/physitrack/pmsbridge"
	"golang.org/x/text/unicode/norm"
)

// Encoding is how a text message travels: GSM-7 (160 characters in one
// segment, 153 per segment when split) or UCS-2 (70, 67 when split), which
// carriers use as soon as one character is outside the GSM-7 alphabet.
type Encoding string

// The two SMS encodings.
const (
	GSM7 Encoding = "GSM-7"
	UCS2 Encoding = "UCS-2"
)

// gsmBasic is the GSM 03.38 default alphabet (one septet each); gsmExtended
// the extension table (two septets each: escape + character).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtended = "\f^{}\\[~]|€"
)

var gsmBasicSet, gsmExtendedSet = runeSet(gsmBasic), runeSet(gsmExtended)

func runeSet(s string) map[rune]bool {
	m := map[rune]bool{}
	for _, r := range s {
		m[r] = true
	}
	return m
}

// IsGSM7 reports whether every character of s is in the GSM-7 alphabet
// (default or extension table).
func IsGSM7(s string) bool {
	for _, r := range s {
		if !gsmBasicSet[r] && !gsmExtendedSet[r] {
			return false
		}
	}
	return true
}

// Segments returns the encoding s will travel in, its length in that
// encoding's units (septets, extension characters counting two; or UTF-16
// code units), and how many SMS segments it takes.
func Segments(s string) (enc Encoding, length, segments int) {
	if IsGSM7(s) {
		for _, r := range s {
			length++
			if gsmExtendedSet[r] {
				length++
			}
		}
		return GSM7, length, count(length, 160, 153)
	}
	length = len(utf16.Encode([]rune(s)))
	return UCS2, length, count(length, 70, 67)
}

func count(n, single, multi int) int {
	switch {
	case n == 0:
		return 0
	case n <= single:
		return 1
	}
	return (n + multi - 1) / multi
}

// Text is a composed text message.
type Text struct {
	Body     string
	Encoding Encoding
	Length   int // in the encoding's units
	Segments int
}

// CodeText is what the text message that gives a patient their programme
// code says: the clinic's name, the code and the address. Like the email it
// holds no year of birth and no programme content.
type CodeText struct {
	// Clinic is the clinic's name. Required.
	Clinic string
	// Code is the programme's 8-letter access code. Required.
	Code string
	// AccessURL is where the patient enters it: public_url + "/access".
	// Required.
	AccessURL string
}

// minClinic is the shortest a clinic's name is cut to so that the text fits
// one segment; a shorter cut would no longer say who is writing.
const minClinic = 12

// Compose writes the code text in one GSM-7 segment (160 characters)
// whenever it can:
//
//	Harbour Physio: your programme code is qwertyui. Open https://au.physitrack.com/access and enter the code and your year of birth.
//
// and, when that is too long, the shorter
//
//	Harbour Physio: code qwertyui. Open https://au.physitrack.com/access and enter it with your year of birth.
//
// with the clinic's name cut (at a word, never below 12 characters) if
// even that is too long. Before that, characters of the clinic's name that
// are outside GSM-7 but have a close GSM-7 form are replaced (’ → ', – → -,
// ë → e, ç → c; é, ü, ñ, ø and the like are GSM-7 already). A name that
// still holds other characters (Chinese, Greek lower case, emoji) makes
// the whole message UCS-2: 70 characters per segment, so the text takes
// two segments or more (the wording that needs fewest, the fuller one on a
// tie) and costs as many messages; it is still sent, the name untouched.
func (c CodeText) Compose() (Text, error) {
	clinic := toGSM(oneLine(c.Clinic))
	switch {
	case clinic == "":
		return Text{}, errors.New("sms: the code text needs the clinic's name")
	case !pmsbridge.ValidCode(c.Code):
		return Text{}, errors.New("sms: the code must be 8 lower-case letters")
	case !strings.HasPrefix(c.AccessURL, "https://") && !strings.HasPrefix(c.AccessURL, "http://"):
		return Text{}, errors.New("sms: the access address must be an http(s) URL")
	}
	long := func(name string) string {
		return name + ": your programme code is " + c.Code + ". Open " + c.AccessURL + " and enter the code and your year of birth."
	}
	short := func(name string) string {
		return name + ": code " + c.Code + ". Open " + c.AccessURL + " and enter it with your year of birth."
	}
	var best Text
	for _, body := range []string{long(clinic), short(clinic)} {
		t := text(body)
		if t.Segments == 1 {
			return t, nil
		}
		if best.Body == "" || t.Segments < best.Segments {
			best = t
		}
	}
	if best.Encoding == GSM7 {
		// Cut the name until the short wording fits one segment.
		room := 160 - septets(short(""))
		if cut := cutName(clinic, room); cut != "" {
			return text(short(cut)), nil
		}
	}
	return best, nil
}

func text(body string) Text {
	enc, n, seg := Segments(body)
	return Text{Body: body, Encoding: enc, Length: n, Segments: seg}
}

func septets(s string) int {
	_, n, _ := Segments(s)
	return n
}

// cutName shortens a GSM-7 name to at most room septets, at a word
// boundary when one is near; "" when that would leave fewer than minClinic
// characters.
func cutName(name string, room int) string {
	r := []rune(name)
	for len(r) > 0 && septets(string(r)) > room {
		r = r[:len(r)-1]
	}
	cut := strings.TrimRight(string(r), " -,.&")
	if i := strings.LastIndexByte(cut, ' '); i >= minClinic {
		cut = cut[:i]
	}
	if len([]rune(cut)) < minClinic {
		return ""
	}
	return cut
}

// gsmLookalike maps common characters outside GSM-7 to a close GSM-7 form.
var gsmLookalike = map[rune]string{
	'‘': "'", '’': "'", '‚': "'", 'ʼ': "'", '′': "'", '`': "'", '´': "'",
	'“': "\"", '”': "\"", '„': "\"", '″': "\"",
	'–': "-", '—': "-", '‐': "-", '‑': "-", '−': "-",
	'…': "...", '•': "-", '·': ".",
	'\u00a0': " ", '\u2009': " ", '\u202f': " ", '\u2007': " ",
	'ł': "l", 'Ł': "L", 'đ': "d", 'Đ': "D", 'ı': "i", 'œ': "oe", 'Œ': "OE",
}

// toGSM replaces characters outside GSM-7 by a GSM-7 lookalike or their
// base letter without accents, when there is one; others stay.
func toGSM(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case gsmBasicSet[r] || gsmExtendedSet[r]:
			b.WriteRune(r)
		case gsmLookalike[r] != "":
			b.WriteString(gsmLookalike[r])
		default:
			base := []rune(norm.NFD.String(string(r)))
			if len(base) > 1 && gsmBasicSet[base[0]] && allMarks(base[1:]) {
				b.WriteRune(base[0])
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

func allMarks(rs []rune) bool {
	for _, r := range rs {
		if !unicode.Is(unicode.Mn, r) {
			return false
		}
	}
	return true
}

// oneLine drops control characters and collapses spaces.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) && r != '\u00a0' || unicode.IsControl(r) }), " ")
}
