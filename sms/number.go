package sms

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"github.com/physitrack/pmsbridge"
)

// regionCountry maps pmsbridge's region codes to the ISO country whose
// numbering plan a patient's local number is read in. The UK's ISO code is
// GB; ca and us share +1.
var regionCountry = map[string]string{
	"au": "AU", // +61
	"nz": "NZ", // +64
	"ca": "CA", // +1
	"us": "US", // +1
	"ie": "IE", // +353
	"uk": "GB", // +44
}

// RegionCountry returns the ISO 3166 country code that local numbers of a
// pmsbridge region are read in ("uk" → "GB"), and whether the region is
// known.
func RegionCountry(region string) (string, bool) {
	c, ok := regionCountry[strings.ToLower(region)]
	return c, ok
}

var e164Re = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// MobileE164 reads a patient's phone number as the clinic typed it into
// Cliniko ("0412 345 678", "(416) 555-0134", "+353 87 123 4567",
// "61412345678") and returns it in E.164 form ("+61412345678"), reading
// local numbers in the deployment region's numbering plan (RegionCountry).
// Numbers already in international form keep their own country. A number
// written with its country code but without the "+" (Cliniko's own seed data
// does this) is accepted when it is not valid as a local number.
//
// The number must be valid and able to take text messages: a mobile, or a
// North American number (where mobiles and landlines cannot be told apart).
// Anything else — a landline, a toll-free or premium number, a number in a
// range not in use (Ofcom's drama range 07700 900xxx, for one), junk — is
// an *Error with cause delivery_rejected and a reason a clinician
// understands. An unknown region is an *Error with cause internal.
func MobileE164(raw, region string) (string, error) {
	country, ok := RegionCountry(region)
	if !ok {
		return "", &Error{Op: OpNumber, Cause: pmsbridge.CauseInternal,
			Detail: fmt.Sprintf("unknown region %q", region)}
	}
	masked := MaskNumber(raw)
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", &Error{Op: OpNumber, Cause: pmsbridge.CauseNoContact, Detail: "no mobile number"}
	}
	num, err := phonenumbers.Parse(s, country)
	if err == nil && !phonenumbers.IsValidNumber(num) && !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, "0") {
		// "61412345678", "447911123456": a country code without its "+".
		if alt, aerr := phonenumbers.Parse("+"+s, country); aerr == nil && phonenumbers.IsValidNumber(alt) {
			num = alt
		}
	}
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", &Error{Op: OpNumber, Cause: pmsbridge.CauseDeliveryRejected, To: masked, reason: reasonNotANumber,
			Detail: "not a valid phone number in the " + strings.ToLower(region) + " numbering plan or in international form"}
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	masked = MaskNumber(e164)
	switch t := phonenumbers.GetNumberType(num); t {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return e164, nil
	default:
		return "", &Error{Op: OpNumber, Cause: pmsbridge.CauseDeliveryRejected, To: masked, reason: reasonNotAMobile,
			Detail: "a " + numberTypeName(t) + " number cannot take text messages"}
	}
}

func numberTypeName(t phonenumbers.PhoneNumberType) string {
	switch t {
	case phonenumbers.FIXED_LINE:
		return "landline"
	case phonenumbers.TOLL_FREE:
		return "toll-free"
	case phonenumbers.PREMIUM_RATE:
		return "premium-rate"
	case phonenumbers.SHARED_COST:
		return "shared-cost"
	case phonenumbers.VOIP:
		return "internet (VoIP)"
	case phonenumbers.PERSONAL_NUMBER:
		return "personal (forwarding)"
	case phonenumbers.PAGER:
		return "pager"
	case phonenumbers.UAN:
		return "company"
	case phonenumbers.VOICEMAIL:
		return "voicemail"
	}
	return "non-mobile"
}

// MaskNumber hides most of a phone number for display and logs, keeping
// the country code, the first digit of the national number and the last
// three digits: "+61412345678" → "+61 4** *** 678". A number that is not in
// E.164 form keeps only its last three digits ("*** 678"); fewer than six
// digits become "***".
func MaskNumber(number string) string {
	s := strings.TrimSpace(number)
	if e164Re.MatchString(s) {
		if n, err := phonenumbers.Parse(s, ""); err == nil {
			intl := phonenumbers.Format(n, phonenumbers.INTERNATIONAL) // "+61 412 345 678"
			cc, rest, _ := strings.Cut(intl, " ")
			return cc + " " + maskDigits(rest, 1)
		}
	}
	var digits []rune
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits = append(digits, r)
		}
	}
	if len(digits) < 6 {
		return "***"
	}
	return "*** " + string(digits[len(digits)-3:])
}

// maskDigits replaces every digit of s with '*' except the first keep
// digits and the last three, keeping the grouping.
func maskDigits(s string, keep int) string {
	total := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			total++
		}
	}
	out := []rune(s)
	seen := 0
	for i, r := range out {
		if r < '0' || r > '9' {
			continue
		}
		if seen >= keep && seen < total-3 {
			out[i] = '*'
		}
		seen++
	}
	return string(out)
}
