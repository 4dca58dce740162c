package jobs

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/store"
)

// TestImportOddClinikoFields imports, through the Cliniko sandbox, patients
// whose fields Cliniko does not bound or clean: each one imports (no
// failure, so no retries), within our limits and still readable.
func TestImportOddClinikoFields(t *testing.T) {
	t.Parallel()
	b := setup(t)
	au1 := b.sb.Accounts()[0]
	dob := func(s string) *string { return &s }
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	tests := []struct {
		desc  string
		in    sandbox.Patient
		check func(t *testing.T, p store.Patient)
	}{
		{"first name of 10,000 letters", sandbox.Patient{FirstName: long("Zoë", 3334), LastName: "O'Brien"}, func(t *testing.T, p store.Patient) {
			wantCut(t, "first name", p.FirstName, "ZoëZoë", maxNameRunes)
			if p.LastName != "O'Brien" {
				t.Errorf("last name %q", p.LastName)
			}
		}},
		{"last name of 5,000 four-byte characters", sandbox.Patient{FirstName: "Ann", LastName: long("𠜎", 5000)}, func(t *testing.T, p store.Patient) {
			wantCut(t, "last name", p.LastName, "𠜎𠜎", maxNameRunes)
		}},
		{"last name of 450 three-byte characters (over the byte bound, under the rune bound)", sandbox.Patient{FirstName: "Ann", LastName: long("佐", 90)}, func(t *testing.T, p store.Patient) {
			if p.LastName != long("佐", 90) {
				t.Errorf("a 90-character name was changed: %q", p.LastName)
			}
		}},
		{"control characters and line breaks", sandbox.Patient{FirstName: "Zo\x00ë\x07\x1b[31m", LastName: "O'Brien\r\n\tJr\u202e.", Gender: "Fe\x00male"}, func(t *testing.T, p store.Patient) {
			if p.FirstName != "Zoë[31m" || p.LastName != "O'Brien Jr." || p.Gender != "Female" {
				t.Errorf("names %q %q, gender %q", p.FirstName, p.LastName, p.Gender)
			}
		}},
		{"invalid UTF-8", sandbox.Patient{LastName: "Ok", Raw: map[string]json.RawMessage{"first_name": json.RawMessage("\"Jos\xe9 \xff\xfe\"")}}, func(t *testing.T, p store.Patient) {
			if !utf8.ValidString(p.FirstName) || !strings.HasPrefix(p.FirstName, "Jos") || !strings.Contains(p.FirstName, "\uFFFD") {
				t.Errorf("first name %q: want valid UTF-8 with the bad bytes replaced", p.FirstName)
			}
		}},
		{"email of 1,000 characters", sandbox.Patient{FirstName: "Ann", LastName: "Lee", Email: long("a", 990) + "@example.com"}, func(t *testing.T, p store.Patient) {
			if p.Email != "" {
				t.Errorf("email %q: an address too long to be real is dropped, not shortened", p.Email)
			}
		}},
		{"email with a line break", sandbox.Patient{FirstName: "Ann", LastName: "Lee", Email: "ann@example.com\r\nBcc: x@evil.example"}, func(t *testing.T, p store.Patient) {
			if p.Email != "" {
				t.Errorf("email %q, want none", p.Email)
			}
		}},
		{"5,000 phone numbers", sandbox.Patient{FirstName: "Ann", LastName: "Lee", PhoneNumbers: manyPhones(5000)}, func(t *testing.T, p store.Patient) {
			if p.Mobile != "61400000042" {
				t.Errorf("mobile %q, want the first Mobile number", p.Mobile)
			}
		}},
		{"a mobile number of 1,000 digits", sandbox.Patient{FirstName: "Ann", LastName: "Lee",
			PhoneNumbers: []sandbox.Phone{{Type: "Mobile", Number: long("4", 1000)}, {Type: "Home", Number: "(02) 9555 4444"}}}, func(t *testing.T, p store.Patient) {
			if p.Mobile != "(02) 9555 4444" {
				t.Errorf("mobile %q: a number too long to be real is skipped, the next usable one taken", p.Mobile)
			}
		}},
		{"date of birth of 2,000 characters", sandbox.Patient{FirstName: "Ann", LastName: "Lee", DateOfBirth: dob(long("1985-", 400))}, func(t *testing.T, p store.Patient) {
			if p.BirthYearStatus != pmsbridge.BirthYearInvalid {
				t.Errorf("birth year status %q, want invalid", p.BirthYearStatus)
			}
			wantCut(t, "raw birth date", p.BirthYearRaw, "1985-1985-", maxRawBirthDateRunes)
		}},
		{"gender of 600 characters", sandbox.Patient{FirstName: "Ann", LastName: "Lee", GenderIdentity: long("non-binary ", 60)}, func(t *testing.T, p store.Patient) {
			wantCut(t, "gender", p.Gender, "non-binary non-binary", maxGenderRunes)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			cp := au1.AddPatient(tt.in)
			tt.check(t, b.importDirect(t, b.pr, cp.ID))
		})
	}
}

// wantCut checks that a field was cut to at most maxRunes runes and the
// store's byte bound, on a rune boundary, with an ellipsis at the end.
func wantCut(t *testing.T, what, got, prefix string, maxRunes int) {
	t.Helper()
	if !utf8.ValidString(got) || !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, "…") ||
		utf8.RuneCountInString(got) > maxRunes || len(got) > store.MaxPatientFieldBytes {
		t.Errorf("%s %q (%d runes, %d bytes): want it cut to at most %d runes and %d bytes, ending in …",
			what, got, utf8.RuneCountInString(got), len(got), maxRunes, store.MaxPatientFieldBytes)
	}
}

// manyPhones is n home numbers with one Mobile number among them.
func manyPhones(n int) []sandbox.Phone {
	out := make([]sandbox.Phone, n)
	for i := range out {
		out[i] = sandbox.Phone{Type: "Home", Number: fmt.Sprintf("612955%05d", i)}
	}
	out[n/2] = sandbox.Phone{Type: "Mobile", Number: "61400000042"}
	return out
}

func TestCleanText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"  Zoë  ", "Zoë"},
		{"a\tb\nc", "a b c"},
		{"a\x00b", "ab"},
		{"a\u202eb\u2066c", "abc"},
		{"a\xffb", "a\uFFFDb"},
		{"abcdef", "abcd…"},
		{"ab  cdef", "ab c…"},
		{"abc  defg", "abc…"},
		{"abcde", "abcde"},
	} {
		if got := cleanText(tc.in, 5); got != tc.want {
			t.Errorf("cleanText(%q, 5) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
