package sms

import (
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge"
)

func TestStatusError(t *testing.T) {
	t.Parallel()
	to := MaskNumber("+61412345678")
	tests := []struct {
		desc    string
		status  int
		body    string
		cause   pmsbridge.Cause
		code    int
		setup   bool
		message string
	}{
		{desc: "known code, number in Twilio's text masked", status: 400,
			body:  `{"code":21211,"message":"The 'To' number +61412345678 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`,
			cause: pmsbridge.CauseDeliveryRejected, code: 21211, message: "The mobile number +61 4** *** 678 is not a valid phone number."},
		{desc: "unknown code: generic sentence with the code", status: 400,
			body:  `{"code":21699,"message":"Something new","status":400}`,
			cause: pmsbridge.CauseDeliveryRejected, code: 21699, message: "refused to send the text message to +61 4** *** 678 (Twilio error 21699)"},
		{desc: "403 without a body is a set-up problem", status: 403, body: ``,
			cause: pmsbridge.CauseDeliveryRejected, setup: true, message: "Twilio refused pmsbridge's SMS settings"},
		{desc: "429", status: 429, body: `{"code":20429,"message":"Too Many Requests","status":429}`,
			cause: pmsbridge.CauseDeliveryUnavailable, code: 20429, message: "tried again automatically"},
		{desc: "502 from a proxy, HTML", status: 502, body: `<html>Bad gateway</html>`,
			cause: pmsbridge.CauseDeliveryUnavailable, message: "tried again automatically"},
	}
	for _, tc := range tests {
		e := statusError(OpSend, to, tc.status, []byte(tc.body), time.Time{})
		if e.Cause != tc.cause || e.Code != tc.code || e.Setup != tc.setup {
			t.Errorf("%s: cause %s code %d setup %v", tc.desc, e.Cause, e.Code, e.Setup)
		}
		if msg := e.ErrorMessage(); !strings.Contains(msg, tc.message) {
			t.Errorf("%s: message %q lacks %q", tc.desc, msg, tc.message)
		}
		if strings.Contains(e.Error(), "412345678") {
			t.Errorf("%s: error holds the number: %v", tc.desc, e)
		}
	}
}

func TestCauseForStatus(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]pmsbridge.Cause{
		0: pmsbridge.CauseDeliveryUnavailable, 400: pmsbridge.CauseDeliveryRejected, 401: pmsbridge.CauseDeliveryRejected,
		404: pmsbridge.CauseDeliveryRejected, 429: pmsbridge.CauseDeliveryUnavailable, 500: pmsbridge.CauseDeliveryUnavailable,
		503: pmsbridge.CauseDeliveryUnavailable, 302: pmsbridge.CauseDeliveryUnavailable,
	} {
		if got := CauseForStatus(status); got != want {
			t.Errorf("CauseForStatus(%d) = %s, want %s", status, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Time{
		"":                              {},
		"30":                            now.Add(30 * time.Second),
		"Sun, 22 Nov 2026 10:05:00 GMT": now.Add(5 * time.Minute),
		"soon":                          {},
	} {
		if got := retryAfter(v, now); !got.Equal(want) {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}
