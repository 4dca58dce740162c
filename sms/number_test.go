package sms_test

import (
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/sms"
)

func TestMobileE164(t *testing.T) {
	t.Parallel()
	const (
		ok         = ""
		notNumber  = "is not a valid phone number"
		notMobile  = "is not a mobile number"
		noContact  = "has no mobile number"
		unknownReg = "a fault in pmsbridge"
	)
	tests := []struct {
		region, raw, want string
		problem           string // a phrase of MessageOf, or "" for success
	}{
		// Australia: mobiles 04xx xxx xxx.
		{region: "au", raw: "0412 345 678", want: "+61412345678"},
		{region: "au", raw: "0412-345-678", want: "+61412345678"},
		{region: "au", raw: "+61 412 345 678", want: "+61412345678"},
		{region: "au", raw: "+61 (0) 412 345 678", want: "+61412345678"},
		{region: "au", raw: "61400111222", want: "+61400111222"}, // Cliniko keeps some numbers without "+"
		{region: "au", raw: "0011 61 412 345 678", want: "+61412345678"},
		{region: "au", raw: "(02) 9374 4000", problem: notMobile},
		{region: "au", raw: "1300 123 456", problem: notMobile},
		{region: "au", raw: "0412 345 6789", problem: notNumber},
		{region: "au", raw: "+64 21 123 4567", want: "+64211234567"}, // a New Zealand mobile keeps its country
		// New Zealand: mobiles 02x.
		{region: "nz", raw: "021 123 4567", want: "+64211234567"},
		{region: "nz", raw: "+64 21 123 4567", want: "+64211234567"},
		{region: "nz", raw: "09 300 1234", problem: notMobile},
		{region: "nz", raw: "0800 123 456", problem: notMobile},
		// Canada and the US: +1, mobiles and landlines cannot be told apart.
		{region: "ca", raw: "(416) 555-0134", want: "+14165550134"},
		{region: "ca", raw: "416.555.0134", want: "+14165550134"},
		{region: "ca", raw: "+1 613-555-0199", want: "+16135550199"},
		{region: "ca", raw: "(212) 555-0134", want: "+12125550134"}, // a US number in a Canadian clinic
		{region: "us", raw: "(212) 555-0134", want: "+12125550134"},
		{region: "us", raw: "1 (212) 555-0134", want: "+12125550134"},
		{region: "us", raw: "1-800-555-0199", problem: notMobile},
		{region: "us", raw: "(555) 555-5555", problem: notNumber},
		{region: "us", raw: "(212) 555-01", problem: notNumber},
		// Ireland: mobiles 08x.
		{region: "ie", raw: "087 123 4567", want: "+353871234567"},
		{region: "ie", raw: "083 123 4567", want: "+353831234567"},
		{region: "ie", raw: "00353 87 123 4567", want: "+353871234567"},
		{region: "ie", raw: "01 234 5678", problem: notMobile},
		// United Kingdom (region uk, country GB): mobiles 07xxx.
		{region: "uk", raw: "07400 123456", want: "+447400123456"},
		{region: "uk", raw: "07911 123456", want: "+447911123456"},
		{region: "uk", raw: "+44 7400 123456", want: "+447400123456"},
		{region: "uk", raw: "447400123456", want: "+447400123456"},
		{region: "au", raw: "447400123456", want: "+447400123456"}, // a UK mobile without "+" in an Australian clinic
		// Ofcom keeps 07700 900000–900999 for drama: no phone has such a
		// number, and libphonenumber (like the network) treats it as not in
		// use.
		{region: "uk", raw: "07700 900123", problem: notNumber},
		{region: "uk", raw: "020 7946 0958", problem: notMobile},
		// Junk and nothing.
		{region: "au", raw: "hello", problem: notNumber},
		{region: "au", raw: "+", problem: notNumber},
		{region: "au", raw: "0000", problem: notNumber},
		{region: "au", raw: "   ", problem: noContact},
		{region: "fr", raw: "0612345678", problem: unknownReg},
	}
	for _, tc := range tests {
		t.Run(tc.region+" "+tc.raw, func(t *testing.T) {
			t.Parallel()
			got, err := sms.MobileE164(tc.raw, tc.region)
			if tc.problem == ok {
				if err != nil || got != tc.want {
					t.Fatalf("MobileE164(%q, %s) = %q, %v; want %q", tc.raw, tc.region, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("MobileE164(%q, %s) = %q, want an error", tc.raw, tc.region, got)
			}
			wantCause := pmsbridge.CauseDeliveryRejected
			switch tc.problem {
			case noContact:
				wantCause = pmsbridge.CauseNoContact
			case unknownReg:
				wantCause = pmsbridge.CauseInternal
			}
			if c := pmsbridge.CauseOf(err); c != wantCause {
				t.Errorf("cause %s, want %s", c, wantCause)
			}
			if msg := pmsbridge.MessageOf(err); !strings.Contains(msg, tc.problem) {
				t.Errorf("message %q lacks %q", msg, tc.problem)
			}
			digits := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, tc.raw)
			for _, s := range []string{err.Error(), pmsbridge.MessageOf(err)} {
				if len(digits) >= 6 && strings.Contains(strings.ReplaceAll(s, " ", ""), digits) {
					t.Errorf("text holds the whole number: %q", s)
				}
			}
		})
	}
}

func TestMaskNumber(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"+61412345678":  "+61 4** *** 678",
		"+64211234567":  "+64 2* *** *567",
		"+12125550134":  "+1 2**-***-*134",
		"+353871234567": "+353 8* *** *567",
		"+447400123456": "+44 7*** ***456",
		"0412 345 678":  "*** 678",
		"12345":         "***",
		"":              "***",
	} {
		if got := sms.MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegionCountry(t *testing.T) {
	t.Parallel()
	for region, want := range map[string]string{"au": "AU", "nz": "NZ", "ca": "CA", "us": "US", "ie": "IE", "uk": "GB", "UK": "GB"} {
		if got, ok := sms.RegionCountry(region); !ok || got != want {
			t.Errorf("RegionCountry(%q) = %q, %v", region, got, ok)
		}
	}
	if _, ok := sms.RegionCountry("gb"); ok {
		t.Error("gb is not a pmsbridge region")
	}
}
