package bridge

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// TestDeliverySummary: each message state reads as one sentence, with the
// time in the clinic's zone.
func TestDeliverySummary(t *testing.T) {
	t.Parallel()
	auckland, err := pmsbridge.LoadClinicTime("Pacific/Auckland")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC) // 14:00 NZDT
	for _, tc := range []struct {
		desc string
		m    store.Message
		want string
	}{
		{"sent today", store.Message{State: pmsbridge.MessageSent, To: "z***@example.com", SentAt: now.Add(-3 * time.Hour)}, "Sent to z***@example.com at 11:00"},
		{"sent yesterday", store.Message{State: pmsbridge.MessageSent, To: "+64 2** *** 678", SentAt: now.Add(-24 * time.Hour)}, "Sent to +64 2** *** 678 on 29 Nov 2026 at 14:00"},
		{"pending", store.Message{State: pmsbridge.MessagePending, To: "z***@example.com", Attempts: 1}, "Sending to z***@example.com…"},
		{"pending, tried again", store.Message{State: pmsbridge.MessagePending, To: "z***@example.com", Attempts: 3},
			"Sending to z***@example.com… still trying (3 attempts so far); pmsbridge keeps trying by itself."},
		{"failed", store.Message{State: pmsbridge.MessageFailed, To: "z***@example.com", Reason: "The address was refused."}, "Not sent: The address was refused."},
		{"failed, no reason", store.Message{State: pmsbridge.MessageFailed, To: "z***@example.com"}, "Not sent to z***@example.com."},
		{"given up after its retries", store.Message{State: pmsbridge.MessageFailed, To: "z***@example.com", Cause: pmsbridge.CauseDeliveryUnavailable,
			Reason: "The email could not be sent just now. It is tried again automatically."},
			"Not sent: The mail server or the text-message service did not answer for a long time, so pmsbridge stopped trying to send the patient's programme code. Send the code again in a few minutes, or give the patient the code yourself."},
	} {
		if got := deliverySummary(tc.m, auckland, now); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.desc, got, tc.want)
		}
	}
}

// TestAssignedCodeNotice: after an assignment the page says where the first
// version's code went, that the practitioner hands it over when nothing
// could send it (with the reasons), or that a later version sent nothing.
func TestAssignedCodeNotice(t *testing.T) {
	t.Parallel()
	noEmail := jobs.ChannelStatus{Channel: pmsbridge.ChannelEmail, Problem: jobs.ProblemNoAddress}
	landline := jobs.ChannelStatus{Channel: pmsbridge.ChannelSMS, Problem: jobs.ProblemNotAMobile, To: "+61 2** *** 444"}
	auto := func(ch pmsbridge.Channel, st pmsbridge.MessageState, to, reason string) deliveryLine {
		return deliveryLine{Message: store.Message{Channel: ch, State: st, To: to, Reason: reason, Trigger: store.TriggerAssigned}}
	}
	type row struct {
		prog pmsbridge.Programme
		d    *codeDelivery
	}
	rowOf := func(v int, d *codeDelivery) row {
		return row{pmsbridge.Programme{ID: "prg_1", Version: v, Code: "qwertyui"}, d}
	}
	for _, tc := range []struct {
		desc string
		row  row
		want *codeNotice
	}{
		{"on its way by email", rowOf(1, &codeDelivery{Messages: []deliveryLine{auto(pmsbridge.ChannelEmail, pmsbridge.MessagePending, "z***@example.com", "")}}),
			&codeNotice{Tone: "ok", Text: "The code is on its way to the patient by email, to z***@example.com."}},
		{"sent by SMS", rowOf(1, &codeDelivery{Messages: []deliveryLine{auto(pmsbridge.ChannelSMS, pmsbridge.MessageSent, "+61 4** *** 222", "")}}),
			&codeNotice{Tone: "ok", Text: "The code was sent to the patient by SMS, to +61 4** *** 222."}},
		{"refused", rowOf(1, &codeDelivery{Messages: []deliveryLine{auto(pmsbridge.ChannelEmail, pmsbridge.MessageFailed, "z***@example.com", "The address was refused.")}}),
			&codeNotice{Tone: "warn", Text: "The code could not be sent by email. The address was refused."}},
		{"hand-over", rowOf(1, &codeDelivery{Channels: []jobs.ChannelStatus{noEmail, landline}}),
			&codeNotice{Tone: "warn", HandOver: true, Code: "qwertyui", AccessURL: "https://au.example/access", Why: []string{noEmail.Why(), landline.Why()}}},
		{"version 2", rowOf(2, &codeDelivery{Messages: []deliveryLine{auto(pmsbridge.ChannelEmail, pmsbridge.MessageSent, "z***@example.com", "")}}),
			&codeNotice{Tone: "info", Text: "This new version keeps the patient's code, so nothing was sent to them. If they need the code again, use “Send code by email” or “Send code by SMS” next to the programme."}},
		{"no delivery on the row", rowOf(1, nil), nil},
	} {
		got := assignedCodeNotice(tc.row.prog, tc.row.d, "https://au.example/access")
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.desc, d)
		}
	}
}
