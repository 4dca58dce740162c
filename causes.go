package pmsbridge

// Cause is a stable code naming why something failed. Cause strings are part of
// the public contract (failed jobs, import status, PDF sync state): never rename
// one.
//
// Everything the program does with a cause — retry or give up, what a
// practitioner reads, what support staff read — comes from one table,
// causeTable, below. A new cause is a new row there.
type Cause string

// The cause codes of design.md.
const (
	CauseClinikoUnauthorized Cause = "cliniko_unauthorized" // 401: key revoked or wrong shard
	CauseClinikoForbidden    Cause = "cliniko_forbidden"    // 403: the Cliniko role may not do this
	CauseClinikoNotFound     Cause = "cliniko_not_found"    // 404: not in this key's account, or archived
	CauseClinikoInvalid      Cause = "cliniko_invalid"      // 422 (and other 4xx): Cliniko refused the data
	CauseClinikoRateLimited  Cause = "cliniko_rate_limited" // 429: wait until the reset time
	CauseClinikoUnavailable  Cause = "cliniko_unavailable"  // 5xx, timeouts, network
	CauseNoClinikoKey        Cause = "no_cliniko_key"       // nobody with a saved key can do this
	CauseNotLinked           Cause = "not_linked"           // the patient has no Cliniko link
	CauseInvalidPayload      Cause = "invalid_payload"      // a task or request that can never succeed
	CauseInternal            Cause = "internal"             // a bug or an unexpected state

	// Messages to patients (their programme code).
	CauseNoContact           Cause = "no_contact"           // no email address or mobile number for the channel
	CauseDeliveryRejected    Cause = "delivery_rejected"    // the mail server or Twilio refused this for good
	CauseDeliveryUnavailable Cause = "delivery_unavailable" // the mail server or Twilio did not answer
)

// RetryClass is what happens to work that failed with a cause.
type RetryClass int

// The retry classes.
const (
	// RetryBackoff tries again later, with growing pauses; every attempt
	// counts against the task's retries.
	RetryBackoff RetryClass = iota + 1
	// RetryWait tries again at the time the failure names (a rate limit's
	// reset) without using up an attempt: waiting is not failing.
	RetryWait
	// RetryGiveUp stops at once: trying again cannot help until someone
	// fixes something (a key, a role, a record).
	RetryGiveUp
)

// String says what the class does, in a few words (support pages, the
// README's runbook).
func (r RetryClass) String() string {
	switch r {
	case RetryBackoff:
		return "retried with backoff"
	case RetryWait:
		return "waits, without using up retries"
	case RetryGiveUp:
		return "not retried: fix, then replay"
	}
	return "unknown"
}

// Text is what a page says about a cause.
type Text struct {
	Heading string
	Explain []string // paragraphs: what happened
	Steps   []string // what to do, in order; may be empty
}

// Clinician is what a practitioner reads about a cause.
type Clinician struct {
	// Text is the page for work that failed for good with this cause.
	Text
	// Waiting is what a page that waits for the work says while it is being
	// retried with this cause; nil when there is nothing special to say.
	Waiting *Text
	// Row is one sentence next to a failed PDF on the patient's page: what
	// happened, in plain words. Empty: the reason recorded with the failure
	// is shown.
	Row string
	// Note is one sentence next to a failed PDF (or message) on the
	// patient's page: what to do about it. Empty when nothing can be done
	// by the practitioner. Whether the PDF is then sent by itself depends
	// on who saves a key, which the page says next to it.
	Note string
	// SameAccount and OtherAccount, when set, replace Text on the page of
	// work that failed with this cause when the Cliniko account of the key
	// is known to be the clinic's, or another (cliniko_not_found: the
	// patient was archived, or the key is of another clinic). {key} is the
	// key's account, {clinic} the clinic's patients' account.
	SameAccount, OtherAccount *Text
	// KeyCheck is what the Cliniko settings page says when checking a new
	// API key fails with this cause. Empty: the internal cause's sentence.
	KeyCheck string
	// Settings says the fix is made on the Cliniko settings page (pages
	// link to it).
	Settings bool
}

// Support is what support staff read about a cause (admin pages, the
// support CLI and the README's runbook).
type Support struct {
	Title string // short name, with the HTTP status where there is one
	Means string // what happened
	Fix   string // what fixes it
}

// CauseInfo is everything known about one cause.
type CauseInfo struct {
	Cause Cause
	// Retry is what happens to the work: the one rule that jobs and pages
	// follow.
	Retry RetryClass
	// Reason is the sentence that says what happened when the error itself
	// carries none (a Cliniko answer, for example). It starts with a
	// capital letter and says nothing about what to do: that is the
	// clinician's and support's wording.
	Reason    string
	Clinician Clinician
	Support   Support
}

// clinikoBusy is what a waiting page says while Cliniko is down or asks us
// to slow down.
var clinikoBusy = &Text{
	Heading: "Cliniko is busy — still trying",
	Explain: []string{"Cliniko is not answering right now, or asked us to slow down. pmsbridge keeps trying by itself; you do not need to do anything."},
}

// clinikoUnreachableKeyCheck is the settings page's sentence when Cliniko
// cannot be asked whether a key works.
const clinikoUnreachableKeyCheck = "Cliniko could not be reached to check the key (Cliniko unreachable). Nothing was saved. Try again in a minute."

// causeTable is the one table of causes, in the order support pages show
// them.
var causeTable = []CauseInfo{
	{
		Cause:  CauseClinikoUnauthorized,
		Retry:  RetryGiveUp,
		Reason: "Cliniko did not accept the API key: it may have been revoked, or it belongs to another Cliniko region.",
		Clinician: Clinician{
			Text: Text{
				Heading: "Cliniko did not accept your API key",
				Explain: []string{"pmsbridge uses your personal Cliniko API key to read this patient. Cliniko refused it: the key may have been revoked or replaced, or it belongs to a Cliniko account in another Cliniko region."},
				Steps: []string{
					"In Cliniko, click your name (top right), then My info → Manage API keys, and create a new key.",
					"Paste it in pmsbridge under Cliniko settings and save.",
					"Click \"Open in pmsbridge\" in Cliniko again.",
				},
			},
			Row:      "Cliniko did not accept the API key that was used: it was revoked or replaced, or it is of another Cliniko region.",
			Note:     "Create a new key in Cliniko (My info → Manage API keys) and save it under Cliniko settings.",
			KeyCheck: "Cliniko did not accept this key (bad key). It may have been revoked, mistyped, or belong to a Cliniko account in another region. Create a new key in Cliniko (My info → Manage API keys) and paste it here.",
			Settings: true,
		},
		Support: Support{
			Title: "Cliniko rejected the API key (401)",
			Means: "The practitioner's Cliniko key was revoked or replaced, or belongs to another Cliniko shard/region.",
			Fix:   "Ask the practitioner to create a new key in Cliniko (My info → Manage API keys) and save it under Cliniko settings. Their failed jobs replay by themselves when a working key is saved.",
		},
	},
	{
		Cause:  CauseClinikoForbidden,
		Retry:  RetryGiveUp,
		Reason: "The Cliniko user this API key belongs to has a role that may not do this (for example, a Scheduler may not upload patient files).",
		Clinician: Clinician{
			Text: Text{
				Heading: "Your Cliniko role does not allow this",
				Explain: []string{"Your API key works, but Cliniko refused because of the role of the Cliniko user it belongs to. For example, a Scheduler may not see or upload patient files."},
				Steps: []string{
					"Ask your clinic's Cliniko administrator to give your Cliniko user the Practitioner, Receptionist or Administrator role.",
					"Then save your key again under Cliniko settings, so that pmsbridge sees the new role; or save the key of a Cliniko user who has one of those roles.",
				},
			},
			Row:      "The Cliniko role of the key that was used may not upload files to Cliniko (a Scheduler may not).",
			Note:     "Ask your clinic's Cliniko administrator for the Practitioner, Receptionist or Administrator role, then save the key again.",
			KeyCheck: "Cliniko refused to say whose key this is: the Cliniko user's role does not allow it. Use the key of a user with the Practitioner, Receptionist or Administrator role.",
			Settings: true,
		},
		Support: Support{
			Title: "The Cliniko role may not do this (403)",
			Means: "The Cliniko user of the key has a role that may not do this, e.g. a Scheduler uploading patient files. The key itself works.",
			Fix:   "Ask the clinic's Cliniko administrator to give that user the Practitioner, Receptionist or Administrator role, then the practitioner saves the key again (jobs replay by themselves), or replay here.",
		},
	},
	{
		Cause:  CauseClinikoNotFound,
		Retry:  RetryGiveUp,
		Reason: "Cliniko has no such patient or record in the account this API key belongs to, or it has been archived.",
		Clinician: Clinician{
			Text: Text{
				Heading: "Cliniko did not find this patient",
				Explain: []string{"Cliniko says this patient is not in the Cliniko account that your saved API key belongs to. Either the patient was archived or deleted in Cliniko, or your key belongs to another Cliniko account (for example another clinic's)."},
				Steps: []string{
					"If the patient was archived in Cliniko, unarchive them there, then click \"Open in pmsbridge\" again.",
					"Otherwise check under Cliniko settings which Cliniko account your key belongs to; if it is not your clinic's, save a key of your clinic's account.",
				},
			},
			SameAccount: &Text{
				Heading: "Cliniko no longer shows this patient",
				Explain: []string{"Your key belongs to {key}, your clinic's Cliniko account, but Cliniko did not find this patient there. The patient was most likely archived or deleted in Cliniko."},
				Steps: []string{
					"In Cliniko, find the patient among the archived patients and unarchive them.",
					"Then click \"Open in pmsbridge\" on the patient again.",
				},
			},
			OtherAccount: &Text{
				Heading: "Your key is from another Cliniko account",
				Explain: []string{"Your saved key belongs to {key}, but your clinic's patients are in {clinic}. Cliniko shows a key only the patients of its own account."},
				Steps: []string{
					"Sign in to Cliniko for {clinic}, click your name (top right), then My info → Manage API keys, and create a key.",
					"Save it under Cliniko settings, then click \"Open in pmsbridge\" again.",
				},
			},
			Row:      "Cliniko did not find this patient with the key that was used: the patient was archived or deleted in Cliniko, or the key is of another Cliniko account.",
			Note:     "If the patient was archived in Cliniko, unarchive them there, then press Send to Cliniko again.",
			Settings: true,
		},
		Support: Support{
			Title: "Patient not found in Cliniko (404)",
			Means: "The patient is not in the Cliniko account the key belongs to, or was archived or deleted in Cliniko.",
			Fix:   "Check the practitioner's connected Cliniko account on their settings page; if the patient was archived in Cliniko, unarchive it there, then replay.",
		},
	},
	{
		Cause:  CauseClinikoInvalid,
		Retry:  RetryGiveUp,
		Reason: "Cliniko refused the request as invalid.",
		Clinician: Clinician{
			Text: Text{
				Heading: "Cliniko refused the request",
				Explain: []string{"Cliniko did not accept what pmsbridge sent. Support has the details."},
			},
			Row: "Cliniko refused the file. Support has the details.",
		},
		Support: Support{
			Title: "Cliniko refused the data (422)",
			Means: "Cliniko did not accept what we sent (e.g. an upload it considers invalid). Usually a bug or a Cliniko change.",
			Fix:   "Read the reason; if it names a field, report it to the developers. Replay after a fix.",
		},
	},
	{
		Cause:  CauseClinikoRateLimited,
		Retry:  RetryWait,
		Reason: "Cliniko's request limit for this Cliniko user was reached.",
		Clinician: Clinician{
			Text: Text{
				Heading: "Cliniko kept asking pmsbridge to slow down",
				Explain: []string{"pmsbridge kept trying, but Cliniko's request limit for your Cliniko user stayed used up.", "Try again in a few minutes."},
			},
			Waiting:  clinikoBusy,
			Row:      "Cliniko kept asking pmsbridge to slow down.",
			Note:     "Send it again in a few minutes.",
			KeyCheck: clinikoUnreachableKeyCheck,
		},
		Support: Support{
			Title: "Cliniko rate limit (429)",
			Means: "Too many requests for one Cliniko user; jobs wait until Cliniko's reset time and try again without using up their retries.",
			Fix:   "Nothing to do unless it persists; then check for a runaway practitioner or raise cliniko.requests_per_minute only if Cliniko agreed.",
		},
	},
	{
		Cause:  CauseClinikoUnavailable,
		Retry:  RetryBackoff,
		Reason: "Cliniko could not be reached or did not answer in time.",
		Clinician: Clinician{
			Text: Text{
				Heading: "Cliniko did not answer for several minutes",
				Explain: []string{"pmsbridge kept trying to read this patient from Cliniko, but Cliniko did not answer. It may be down for maintenance.", "Try again now, or in a few minutes."},
			},
			Waiting:  clinikoBusy,
			Row:      "Cliniko did not answer for several minutes.",
			Note:     "Send it again once Cliniko answers (see status.cliniko.com).",
			KeyCheck: clinikoUnreachableKeyCheck,
		},
		Support: Support{
			Title: "Cliniko unavailable (5xx, timeout)",
			Means: "Cliniko did not answer or answered with a server error; jobs retry with backoff.",
			Fix:   "Check https://status.cliniko.com/. When Cliniko is back, replay what ran out of retries.",
		},
	},
	{
		Cause:  CauseNoClinikoKey,
		Retry:  RetryGiveUp,
		Reason: "Nobody with a saved Cliniko API key can do this.",
		Clinician: Clinician{
			Text: Text{
				Heading: "Add your Cliniko API key first",
				Explain: []string{"pmsbridge needs your personal Cliniko API key to read patients from Cliniko."},
			},
			Row:      "Nobody who could send it has a Cliniko API key for this patient's Cliniko account.",
			Note:     "Save a Cliniko API key of this patient's Cliniko account under Cliniko settings.",
			Settings: true,
		},
		Support: Support{
			Title: "No Cliniko key",
			Means: "Nobody with a saved Cliniko key could do this job (the practitioner removed their key or never added one).",
			Fix:   "Ask the practitioner (or the patient's owner) to save their Cliniko key; their jobs replay by themselves.",
		},
	},
	{
		Cause:  CauseNotLinked,
		Retry:  RetryGiveUp,
		Reason: "The patient is not linked to Cliniko.",
		Clinician: Clinician{
			Text: Text{
				Heading: "This patient is not linked to Cliniko",
				Explain: []string{"Open the patient from Cliniko with the \"Open in pmsbridge\" button to link them."},
			},
			Row:  "The patient is not linked to Cliniko, so the PDF stays here.",
			Note: "Open the patient from Cliniko with the \"Open in pmsbridge\" button to link them, then press Send to Cliniko again.",
		},
		Support: Support{
			Title: "Patient not linked to Cliniko",
			Means: "The patient has no Cliniko link, so there is nowhere to send a PDF.",
			Fix:   "Open the patient from Cliniko with the \"Open in\" button to link them, then replay.",
		},
	},
	{
		Cause:  CauseInvalidPayload,
		Retry:  RetryGiveUp,
		Reason: "The work refers to something that does not exist, or cannot be read.",
		Clinician: Clinician{
			Text: Text{
				Heading: "This cannot be done any more",
				Explain: []string{"It refers to something that no longer exists, such as a deleted programme or colleague. It is not something you did."},
			},
			Row: "It refers to something that no longer exists.",
		},
		Support: Support{
			Title: "Invalid job",
			Means: "The job refers to something that no longer exists (a deleted programme or practitioner) or cannot be read.",
			Fix:   "Usually safe to delete. If many appear, report to the developers.",
		},
	},
	{
		Cause:  CauseInternal,
		Retry:  RetryBackoff,
		Reason: "An unexpected error happened. Support has the details.",
		Clinician: Clinician{
			Text: Text{
				Heading: "Something went wrong on our side",
				Explain: []string{"pmsbridge could not finish this. It is not something you did. Try again in a minute; if it keeps happening, contact support and quote the support reference at the bottom of this page."},
			},
			Row:      "Something went wrong on our side.",
			KeyCheck: "The key could not be checked with Cliniko. Nothing was saved. Try again in a minute.",
		},
		Support: Support{
			Title: "Internal error",
			Means: "A bug or an unexpected state on our side (e.g. Redis briefly unreachable); the job is retried with backoff.",
			Fix:   "Look at the logs for the task id; replay once the cause is fixed.",
		},
	},
	{
		Cause:  CauseNoContact,
		Retry:  RetryGiveUp,
		Reason: "The patient has no email address or mobile number for this channel.",
		Clinician: Clinician{
			Text: Text{
				Heading: "No email address or mobile number for this patient",
				Explain: []string{"pmsbridge could not send the patient their programme code: Cliniko has no email address for them (or, for a text message, no mobile number)."},
				Steps: []string{
					"Add the patient's email address or mobile number in Cliniko.",
					"Refresh the patient here, then send the code again.",
					"Or give the patient their code yourself: it is shown next to the programme.",
				},
			},
			Note: "Add an email address or mobile number in Cliniko, refresh the patient, then send the code again; or give the patient the code yourself.",
		},
		Support: Support{
			Title: "No email address or mobile number",
			Means: "The patient has no email address (or no mobile number, for SMS) in Cliniko, so their programme code could not be sent.",
			Fix:   "Ask the clinic to add the patient's email address or mobile number in Cliniko, refresh the patient, then send the code again; or the practitioner gives the code to the patient in person.",
		},
	},
	{
		Cause:  CauseDeliveryRejected,
		Retry:  RetryGiveUp,
		Reason: "The mail server or Twilio refused this recipient or message.",
		Clinician: Clinician{
			Text: Text{
				Heading: "The message to the patient was refused",
				Explain: []string{"The mail server or the text-message service refused to deliver the patient's programme code, for example because the address does not exist, the number cannot receive text messages, or the patient unsubscribed."},
				Steps: []string{
					"Check the patient's email address and mobile number in Cliniko and correct them.",
					"Refresh the patient here, then send the code again.",
					"Or give the patient their code yourself.",
				},
			},
			Note: "Check the patient's contact details in Cliniko, refresh the patient, then send the code again; or give the patient the code yourself.",
		},
		Support: Support{
			Title: "Message refused for good",
			Means: "The mail server or Twilio refused this recipient or message for good (e.g. an address that does not exist, a number that cannot receive SMS, or a patient who unsubscribed).",
			Fix:   "Read the reason; correct the patient's contact details in Cliniko, refresh the patient and send the code again.",
		},
	},
	{
		Cause:  CauseDeliveryUnavailable,
		Retry:  RetryBackoff,
		Reason: "The mail server or Twilio could not be reached, or asked us to slow down.",
		Clinician: Clinician{
			Text: Text{
				Heading: "The message could not be sent",
				Explain: []string{"The mail server or the text-message service did not answer for a long time, so pmsbridge stopped trying to send the patient's programme code."},
				Steps:   []string{"Send the code again in a few minutes, or give the patient their code yourself."},
			},
			Waiting: &Text{
				Heading: "Sending the code — still trying",
				Explain: []string{"The mail server or the text-message service is not answering right now. pmsbridge keeps trying by itself; you do not need to do anything."},
			},
			Note: "Send the code again in a few minutes, or give the patient the code yourself.",
		},
		Support: Support{
			Title: "Mail server or Twilio unavailable",
			Means: "The mail server or Twilio did not answer or asked us to slow down; the message is retried with backoff.",
			Fix:   "Nothing to do unless it persists; then check the SMTP server or Twilio's status page and replay.",
		},
	},
}

// causeIndex finds a cause's row in causeTable.
var causeIndex = func() map[Cause]int {
	m := make(map[Cause]int, len(causeTable))
	for i, c := range causeTable {
		m[c.Cause] = i
	}
	return m
}()

// Causes lists every cause code, in the order support pages show them.
var Causes = func() []Cause {
	out := make([]Cause, len(causeTable))
	for i, c := range causeTable {
		out[i] = c.Cause
	}
	return out
}()

// Valid reports whether c is one of the known cause codes.
func (c Cause) Valid() bool {
	_, ok := causeIndex[c]
	return ok
}

// Info returns everything known about c. A cause this version does not
// know (from an older or newer version, in the failure ledger) is treated
// as internal: retried, and explained as an unexpected error.
func (c Cause) Info() CauseInfo {
	i, ok := causeIndex[c]
	if !ok {
		i = causeIndex[CauseInternal]
	}
	return causeTable[i]
}

// Retry is what happens to work that failed with c.
func (c Cause) Retry() RetryClass { return c.Info().Retry }

// Transient reports whether a failure with this cause is expected to go
// away by itself, so the work is retried rather than given up. It is the
// same rule as the jobs' retry decision: every class but RetryGiveUp.
func (c Cause) Transient() bool { return c.Retry() != RetryGiveUp }
