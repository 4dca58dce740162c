package bridge

import (
	"strconv"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/flows"
	"github.com/physitrack/pmsbridge/store"
)

// What the patient page says about a programme's PDF before assigning (the
// form's note and button) and after (the notice), from the flow's outlook
// (flows.PDFOutlook, the upload job's own rule). After assigning, the
// outlook rides in the address as one of these fixed keys; the words are
// made from it and the page's names, never from the address.
const (
	outlookSend      = "send"      // the assigner's key sends it
	outlookOwner     = "owner"     // the owner's key sends it: the assigner's cannot
	outlookRole      = "role"      // the only key's Cliniko role may not upload (tried anyway)
	outlookNoKey     = "nokey"     // nobody has a key
	outlookAccount   = "account"   // only keys of another Cliniko account
	outlookRegion    = "region"    // only keys of another Cliniko region
	outlookNotLinked = "notlinked" // nowhere to send it: the PDF stays here
	outlookArchived  = "archived"  // Cliniko no longer shows the patient
)

// outlookKey names an outlook.
func outlookKey(o flows.PDFOutlook) string {
	switch o.Cause {
	case "":
		if o.Owner.ID != "" && o.Sender.ID == o.Owner.ID && o.Owner.ID != o.Assigner.ID {
			return outlookOwner
		}
		return outlookSend
	case pmsbridge.CauseNotLinked:
		return outlookNotLinked
	case pmsbridge.CauseClinikoNotFound:
		return outlookArchived
	case pmsbridge.CauseClinikoForbidden:
		return outlookRole
	}
	for _, s := range o.Skipped {
		switch s.Why {
		case pmsbridge.CauseClinikoNotFound:
			return outlookAccount
		case pmsbridge.CauseClinikoUnauthorized:
			return outlookRegion
		}
	}
	return outlookNoKey
}

// outlookWords are what the page says about outlook key (of o, whose names
// it uses): before assigning (the form: a note, "" when all is well, and
// the button) or after (the notice); tone is ok, info or warn.
type outlookWords struct {
	Tone, Before, Button, After string
	// Settings: the fix is on the Cliniko settings page (link to it).
	Settings bool
}

// fixers are who can fix a PDF that cannot be sent, as the replay after a
// key is saved does it (flows.ReplayFixedBy): the assigner and the
// patient's owner, as the viewer reads them ("you", "Dr Demo (the
// patient's owner)").
func fixers(viewerID string, assigner, owner store.Practitioner) string {
	name := func(p store.Practitioner) string {
		if p.ID == viewerID {
			return "you"
		}
		return p.Name
	}
	if owner.ID == "" || owner.ID == assigner.ID {
		return name(assigner)
	}
	o := name(owner)
	if owner.ID != viewerID {
		o += " (the patient's owner)"
	}
	return name(assigner) + " or " + o
}

func wordsOf(key string, o flows.PDFOutlook) outlookWords {
	const later = buttonLater
	owner := o.Owner.Name
	if owner == "" {
		owner = "the patient's owner"
	}
	nobody := "you have no Cliniko API key saved"
	if o.Owner.ID != "" && o.Owner.ID != o.Assigner.ID {
		nobody = "neither you nor " + owner + " (the patient's owner) has a Cliniko API key saved"
	}
	switch key {
	case outlookSend:
		return outlookWords{Tone: "ok", Button: buttonSend,
			After: "The programme is assigned. Its PDF is on its way to the patient's files in Cliniko; its row below shows when it is there."}
	case outlookOwner:
		why := "your Cliniko key cannot send it"
		if len(o.Skipped) > 0 {
			switch o.Skipped[0].Why {
			case pmsbridge.CauseNoClinikoKey:
				why = "you have no Cliniko key saved"
			case pmsbridge.CauseClinikoForbidden:
				why = "your Cliniko role (" + roleOf(o.Skipped[0].User.Role) + ") may not upload files"
			case pmsbridge.CauseClinikoNotFound:
				why = "your Cliniko key is of another Cliniko account"
			case pmsbridge.CauseClinikoUnauthorized:
				why = "your Cliniko key is of another Cliniko region"
			}
		}
		return outlookWords{Tone: "info", Button: buttonSend,
			Before: "The PDF will be sent to Cliniko with " + owner + "'s key (the patient's owner), because " + why + ".",
			After:  "The programme is assigned. Its PDF is on its way to Cliniko with " + owner + "'s key (the patient's owner), because " + why + "."}
	case outlookRole:
		whose := "your Cliniko key"
		if o.PractitionerID != o.Assigner.ID {
			whose = owner + "'s Cliniko key"
		}
		role := roleOf(o.Role)
		text := whose + " (" + o.User.Name + ") has the " + role + " role, which may not upload files. It is sent by itself as soon as a Cliniko key of a Practitioner, Receptionist or Administrator is saved by " +
			fixers(o.Assigner.ID, o.Assigner, o.Owner) + "."
		return outlookWords{Tone: "warn", Button: later, Settings: true,
			Before: "The PDF will probably not reach Cliniko: " + text,
			After:  "The programme is assigned, but its PDF will probably not reach Cliniko: " + text}
	case outlookNoKey:
		text := nobody + ". It is sent by itself as soon as one is saved by " + fixers(o.Assigner.ID, o.Assigner, o.Owner) + "."
		return outlookWords{Tone: "warn", Button: later, Settings: true,
			Before: "The PDF cannot be sent to Cliniko yet: " + text,
			After:  "The programme is assigned, but its PDF cannot be sent to Cliniko yet: " + text}
	case outlookAccount, outlookRegion:
		other := "another Cliniko account"
		if key == outlookRegion {
			other = "another Cliniko region"
		}
		text := "the saved Cliniko keys are of " + other + " than this patient's. It is sent by itself as soon as a key of the patient's Cliniko account is saved by " + fixers(o.Assigner.ID, o.Assigner, o.Owner) + "."
		return outlookWords{Tone: "warn", Button: later, Settings: true,
			Before: "The PDF cannot be sent to Cliniko yet: " + text,
			After:  "The programme is assigned, but its PDF cannot be sent to Cliniko yet: " + text}
	case outlookNotLinked:
		return outlookWords{Tone: "info", Button: buttonHere,
			Before: "This patient is not linked to Cliniko, so the PDF stays here: you can download it from the programme. To link them, open them from Cliniko with \"Open in pmsbridge\".",
			After:  "The programme is assigned. This patient is not linked to Cliniko, so its PDF stays here: download it from the programme's row."}
	case outlookArchived:
		text := "Cliniko no longer shows this patient (archived or deleted there), so the PDF cannot reach their files. Unarchive them in Cliniko, then press \"Send to Cliniko again\" on the programme."
		return outlookWords{Tone: "warn", Button: later,
			Before: text, After: "The programme is assigned. " + text}
	}
	return outlookWords{}
}

// The assign button's words.
const (
	buttonSend  = "Assign and send the PDF to Cliniko"
	buttonHere  = "Assign (the PDF stays here)"
	buttonLater = "Assign now, send the PDF later"
)

// roleOf is a Cliniko role as people say it ("Scheduler").
func roleOf(role string) string { return capitalize(roleName(role)) }

// assignView is what the assign form's template gets.
type assignView struct {
	Patient store.Patient
	Form    assignFormView
	Words   outlookWords
	Button  string
}

// assignData is the assign form with what it says about the PDF; a new
// version's button names the version.
func assignData(p store.Patient, d patientPageData) assignView {
	w := wordsOf(outlookKey(d.Outlook), d.Outlook)
	v := assignView{Patient: p, Form: d.Form, Words: w, Button: w.Button}
	if b := d.Form.Base; b != nil {
		n := strconv.Itoa(b.Current.Version + 1)
		switch w.Button {
		case buttonSend:
			v.Button = "Assign version " + n + " and send the PDF to Cliniko"
		case buttonHere:
			v.Button = "Assign version " + n + " (the PDF stays here)"
		default:
			v.Button = "Assign version " + n + " now, send the PDF later"
		}
	}
	return v
}

// assignedNotice is the notice after assigning: the outlook at the time
// of assigning (key, from the address; unknown keys say what a plain
// assignment does), in words with today's names.
func assignedNotice(key string, v flows.PatientView) (string, string) {
	w := wordsOf(key, v.Outlook)
	if w.After == "" {
		return "The programme is assigned.", "ok"
	}
	return w.After, w.Tone
}

// sentByItself is what a failed PDF's row promises (flows.ReplayFixedBy
// keeps it): for the causes a key fixes, that the PDF is sent by itself
// once the version's assigner or the patient's owner saves a key that may
// upload files; "" for the others.
func (rv rowView) SentByItself(v flows.VersionView) string {
	if v.PDF.State != pmsbridge.PDFFailed {
		return ""
	}
	switch v.PDF.Cause {
	case pmsbridge.CauseNoClinikoKey, pmsbridge.CauseClinikoUnauthorized, pmsbridge.CauseClinikoForbidden:
	default:
		return ""
	}
	assigner := store.Practitioner{ID: v.PractitionerID, Name: rv.View.Names[v.PractitionerID]}
	if assigner.Name == "" {
		assigner.Name = "the practitioner who assigned it"
	}
	return "It is sent by itself as soon as a Cliniko key that may upload files for this patient is saved by " +
		fixers(rv.View.Viewer.ID, assigner, rv.View.Owner) + "."
}
