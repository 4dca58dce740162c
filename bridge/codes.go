package bridge

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// The patient's code on its way to them: the send-code form, what a
// programme row shows about the messages that carry the code (the
// "code_delivery" template, templates/code_delivery.html), the notice after
// an assignment, and code_delivery in the patient JSON.

// sendCode is POST /patients/{id}/programmes/{pid}/send-code: channel=email
// or sms sends the code of programme pid to the patient again.
func (s *Server) sendCode(w http.ResponseWriter, r *http.Request) {
	p, ok := s.patientForm(w, r)
	if !ok {
		return
	}
	ch := pmsbridge.Channel(strings.TrimSpace(r.PostForm.Get("channel")))
	if _, err := s.flows.SendCode(r.Context(), *practitionerFrom(r.Context()), p, r.PathValue("pid"), ch); err != nil {
		s.patientError(w, r, p, err, nil)
		return
	}
	http.Redirect(w, r, "/patients/"+p.ID+"?done="+sentCodeDone(ch), http.StatusSeeOther)
}

// codeDelivery is what a programme row shows about its code reaching the
// patient: the field Delivery of a programme row, which the template
// "code_delivery" reads with the row's ID, PatientID, Version and Code.
// Every version of a programme has the same code, so the messages are the
// programme's.
type codeDelivery struct {
	// Messages are every message asked for on the programme, oldest first.
	Messages []deliveryLine
	// Channels are email, then SMS: the send buttons, each disabled with
	// its Why when it cannot work.
	Channels []jobs.ChannelStatus
}

// Pending reports whether a message is still on its way (a page that polls
// the patient JSON keeps polling while one is).
func (d *codeDelivery) Pending() bool {
	for _, m := range d.Messages {
		if m.State == pmsbridge.MessagePending {
			return true
		}
	}
	return false
}

// CanSend reports whether a channel can send the code now.
func (d *codeDelivery) CanSend() bool {
	for _, c := range d.Channels {
		if c.OK() {
			return true
		}
	}
	return false
}

// deliveryLine is one message as the row shows it.
type deliveryLine struct {
	store.Message
	// Summary is the line's sentence, in the clinic's time: "Sent to
	// z***@example.com at 10:02", "Sending to +61 4** *** 678…", "Not
	// sent: <reason>". The patient JSON carries it too (summary).
	Summary string
	// AskedBy says why it was sent: "when the programme was assigned", or
	// "sent again by Dr Demo" ("by you" for the practitioner looking).
	AskedBy string
}

// codesOf reads what the rows of v's programmes show of their codes, by
// programme id, in the clinic's time: the messages (asked by whom, as the
// practitioner looking reads it), and the channels that can send the
// patient's code now.
func (s *Server) codesOf(ctx context.Context, v flows.PatientView) (map[string]*codeDelivery, error) {
	now := s.cfg.Now()
	channels := s.flows.CodeChannels(v.Patient)
	out := map[string]*codeDelivery{}
	for _, row := range v.Programmes {
		ms, err := s.deps.Store.MessagesOf(ctx, row.Current.ID)
		if err != nil {
			return nil, err
		}
		d := &codeDelivery{Messages: make([]deliveryLine, 0, len(ms)), Channels: channels}
		for _, m := range ms {
			d.Messages = append(d.Messages, deliveryLine{Message: m, Summary: deliverySummary(m, v.Clock, now), AskedBy: askedBy(m, v.Names, v.Viewer.ID)})
		}
		out[row.Current.ID] = d
	}
	return out, nil
}

// deliverySummary is a message's sentence for a clinician.
func deliverySummary(m store.Message, ct pmsbridge.ClinicTime, now time.Time) string {
	to := ""
	if m.To != "" {
		to = " to " + m.To
	}
	switch m.State {
	case pmsbridge.MessageSent:
		return "Sent" + to + " " + ct.At(m.SentAt, now)
	case pmsbridge.MessageFailed:
		if m.Cause != "" && m.Cause.Transient() {
			// Retried until pmsbridge gave up: the provider's own reason
			// says it is tried again, which is no longer so.
			words := m.Cause.Info().Clinician
			return "Not sent: " + strings.Join(append(slices.Clone(words.Explain), words.Note), " ")
		}
		if m.Reason == "" {
			return "Not sent" + to + "."
		}
		return "Not sent: " + m.Reason
	}
	if m.Attempts > 1 {
		return "Sending" + to + "… still trying (" + strconv.Itoa(m.Attempts) + " attempts so far); pmsbridge keeps trying by itself."
	}
	return "Sending" + to + "…"
}

// askedBy says who asked for message m, or that it came with the
// programme's first version.
func askedBy(m store.Message, names map[string]string, me string) string {
	if m.Trigger == store.TriggerAssigned {
		return "when the programme was assigned"
	}
	switch {
	case m.RequestedBy == "":
		return "sent again"
	case m.RequestedBy == me:
		return "sent again by you"
	case names[m.RequestedBy] != "":
		return "sent again by " + names[m.RequestedBy]
	}
	return "sent again by a colleague"
}

// codeNotice is the box after an assignment that says what happens to the
// programme's code (template "code_notice").
type codeNotice struct {
	Tone string // ok, info, warn
	Text string
	// HandOver: nothing can send the code; the practitioner gives it to the
	// patient, and the box shows Code large, with AccessURL.
	HandOver  bool
	Code      string
	Why       []string
	AccessURL string
}

// CodeDeliveryJSON is one entry of code_delivery in the patient JSON (the
// contract's channel, state, cause, reason and sent_at, always there; id,
// to, trigger, requested_at and summary added, so that a page that polls
// can match each entry to its line and show its sentence).
type CodeDeliveryJSON struct {
	ID          string                 `json:"id"`
	Channel     pmsbridge.Channel      `json:"channel"`
	State       pmsbridge.MessageState `json:"state"`
	Cause       string                 `json:"cause"`
	Reason      string                 `json:"reason"`
	SentAt      *time.Time             `json:"sent_at"`
	To          string                 `json:"to"`
	Trigger     store.MessageTrigger   `json:"trigger"`
	RequestedAt time.Time              `json:"requested_at"`
	Summary     string                 `json:"summary"`
}

// codeDeliveryJSON is code_delivery of a programme: [] when no message was
// asked for.
func codeDeliveryJSON(d *codeDelivery) []CodeDeliveryJSON {
	out := []CodeDeliveryJSON{}
	if d == nil {
		return out
	}
	for _, m := range d.Messages {
		e := CodeDeliveryJSON{ID: m.ID, Channel: m.Channel, State: m.State, Cause: string(m.Cause), Reason: m.Reason, To: m.To,
			Trigger: m.Trigger, RequestedAt: m.CreatedAt, Summary: m.Summary}
		if !m.SentAt.IsZero() {
			t := m.SentAt
			e.SentAt = &t
		}
		out = append(out, e)
	}
	return out
}

// deliveryRow is what template "code_delivery" reads of a programme row:
// the programme (its current version's ID and Code), the patient's ID, and
// its code's Delivery (nil shows nothing).
type deliveryRow struct {
	ID, PatientID, Code string
	Delivery            *codeDelivery
}

// assignedCodeNotice is the box about the code after programme
// programmeID was assigned (nil when the patient has no such programme:
// the id comes from the address, and only picks a row).
func (d patientPageData) assignedCodeNotice(programmeID, accessURL string) *codeNotice {
	for _, row := range d.Programmes {
		if row.Current.ID == programmeID {
			return assignedCodeNotice(row.Current.Programme, d.codes[programmeID], accessURL)
		}
	}
	return nil
}
