package bridge

import (
	"strconv"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// Success notices are chosen by a key in the page's address from these
// fixed texts; nothing from the address is ever shown as our own words
// (a link could otherwise make the green box say anything). Numbers are
// parsed as numbers. Unknown keys show nothing.

// settingsNotice is the settings page's notice for done (and the number of
// jobs replayed after a key was saved, and whether the clinic's time zone
// was taken from Cliniko).
func settingsNotice(done, replayed string, zone bool) string {
	switch done {
	case "saved":
		text := "Your Cliniko API key is saved and works."
		if n, ok := count(replayed); ok && n == 1 {
			text += " A programme PDF or an import that had failed is running again with it."
		} else if ok && n > 1 {
			text += " " + itoa(n) + " programme PDFs or imports that had failed are running again with it."
		}
		if zone {
			text += " Your clinic's time zone was taken from Cliniko; times are shown in it."
		}
		return text
	case "removed":
		return "Your Cliniko API key is removed."
	}
	return ""
}

// adminNotice is the admin home page's notice for key, with a count and
// the clinic's name (looked up by the caller from an id, never text from
// the address) when the jobs were all one clinic's.
func adminNotice(key, n, clinic string) string {
	c, ok := count(n)
	where := ""
	if clinic != "" {
		where = " of " + clinic
	}
	switch key {
	case "replayed":
		if ok {
			return "Replayed " + pmsbridge.Count(c, "job", "jobs") + where + "."
		}
	case "deleted":
		if ok {
			return "Deleted " + pmsbridge.Count(c, "job", "jobs") + where + "."
		}
		return "Deleted."
	case "nothing":
		return "Nothing selected: no failed job matches."
	case "gone":
		return "That job is no longer in the failure ledger (it succeeded or was deleted)."
	}
	return ""
}

// count reads a small non-negative decimal number.
func count(s string) (int, bool) {
	if len(s) == 0 || len(s) > 7 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// codeSentNotices are the notices after "Send code by email" / "Send code
// by SMS" (done=code_email, done=code_sms; sentCodeDone).
var codeSentNotices = map[string]string{
	"code_email": "The code is on its way to the patient by email. Its progress shows next to the programme.",
	"code_sms":   "The code is on its way to the patient by SMS. Its progress shows next to the programme.",
}

// sentCodeDone is the notice key after sending a code by ch.
func sentCodeDone(ch pmsbridge.Channel) string {
	if ch == pmsbridge.ChannelSMS {
		return "code_sms"
	}
	return "code_email"
}

// channelWords says how a message travels: "by email", "by SMS".
func channelWords(ch pmsbridge.Channel) string {
	if ch == pmsbridge.ChannelSMS {
		return "by SMS"
	}
	return "by email"
}

// assignedCodeNotice is the box after assigning row's programme version
// version (done=assigned&programme=…) with its code's delivery d, from the records, not the address: where
// the first version's code went (or goes), that the practitioner gives it
// to the patient when nothing could send it, or that a later version sent
// nothing. Nil when the row shows no delivery.
func assignedCodeNotice(row pmsbridge.Programme, d *codeDelivery, accessURL string) *codeNotice {
	if d == nil {
		return nil
	}
	if row.Version > 1 {
		return &codeNotice{Tone: "info", Text: "This new version keeps the patient's code, so nothing was sent to them. " +
			"If they need the code again, use “Send code by email” or “Send code by SMS” next to the programme."}
	}
	for _, m := range d.Messages {
		if m.Trigger != store.TriggerAssigned {
			continue
		}
		to := ""
		if m.To != "" {
			to = ", to " + m.To
		}
		switch m.State {
		case pmsbridge.MessageSent:
			return &codeNotice{Tone: "ok", Text: "The code was sent to the patient " + channelWords(m.Channel) + to + "."}
		case pmsbridge.MessageFailed:
			return &codeNotice{Tone: "warn", Text: "The code could not be sent " + channelWords(m.Channel) + ". " + m.Reason}
		}
		return &codeNotice{Tone: "ok", Text: "The code is on its way to the patient " + channelWords(m.Channel) + to + "."}
	}
	n := &codeNotice{Tone: "warn", HandOver: true, Code: row.Code, AccessURL: accessURL}
	for _, c := range d.Channels {
		if why := c.Why(); why != "" {
			n.Why = append(n.Why, why)
		}
	}
	return n
}
