package bridge

import "github.com/physitrack/pmsbridge"

// CauseHelp explains a cause to support staff: what it means and what
// fixes it. The README's runbook says the same.
type CauseHelp struct {
	Title string
	Means string
	Fix   string
}

// CauseHelps explains every cause code.
var CauseHelps = map[pmsbridge.Cause]CauseHelp{
	pmsbridge.CauseClinikoUnauthorized: {"Cliniko rejected the API key (401)",
		"The practitioner's Cliniko key was revoked or replaced, or belongs to another Cliniko shard/region.",
		"Ask the practitioner to create a new key in Cliniko (My info → Manage API keys) and save it under Cliniko settings. Their failed jobs replay by themselves when a working key is saved."},
	pmsbridge.CauseClinikoForbidden: {"The Cliniko role may not do this (403)",
		"The Cliniko user of the key has a role that may not do this, e.g. a Scheduler uploading patient files.",
		"Ask the clinic's Cliniko administrator to give that user the Practitioner, Receptionist or Administrator role, then the practitioner saves the key again (jobs replay by themselves), or replay here."},
	pmsbridge.CauseClinikoNotFound: {"Patient not found in Cliniko (404)",
		"The patient is not in the Cliniko account the key belongs to, or was archived or deleted in Cliniko.",
		"Check the practitioner's connected Cliniko account on their settings page; if the patient was archived in Cliniko, unarchive it there, then replay."},
	pmsbridge.CauseClinikoInvalid: {"Cliniko refused the data (422)",
		"Cliniko did not accept what we sent (e.g. an upload it considers invalid). Usually a bug or a Cliniko change.",
		"Read the reason; if it names a field, report it to the developers. Replay after a fix."},
	pmsbridge.CauseClinikoRateLimited: {"Cliniko rate limit (429)",
		"Too many requests for one Cliniko user; jobs wait and retry by themselves without using up their retries.",
		"Nothing to do unless it persists; then check for a runaway practitioner or raise cliniko.requests_per_minute only if Cliniko agreed."},
	pmsbridge.CauseClinikoUnavailable: {"Cliniko unavailable (5xx, timeout)",
		"Cliniko did not answer or answered with a server error; jobs retry with backoff.",
		"Check https://status.cliniko.com/. When Cliniko is back, replay what ran out of retries."},
	pmsbridge.CauseNoClinikoKey: {"No Cliniko key",
		"Nobody with a saved Cliniko key could do this job (the practitioner removed their key or never added one).",
		"Ask the practitioner (or the patient's owner) to save their Cliniko key; their jobs replay by themselves."},
	pmsbridge.CauseNotLinked: {"Patient not linked to Cliniko",
		"The patient has no Cliniko link, so there is nowhere to send a PDF.",
		"Open the patient from Cliniko with the \"Open in\" button to link them, then replay."},
	pmsbridge.CauseInvalidPayload: {"Invalid job",
		"The job refers to something that no longer exists (a deleted programme or practitioner) or cannot be read.",
		"Usually safe to delete. If many appear, report to the developers."},
	pmsbridge.CauseNoContact: {"No email address or mobile number",
		"The patient has no email address (or no mobile number, for SMS) in Cliniko, so their programme code could not be sent.",
		"Ask the clinic to add the patient's email address or mobile number in Cliniko, refresh the patient, then send the code again; or the practitioner gives the code to the patient in person."},
	pmsbridge.CauseDeliveryRejected: {"Message refused for good",
		"The mail server or Twilio refused this recipient or message for good (e.g. an address that does not exist, a number that cannot receive SMS, or a patient who unsubscribed).",
		"Read the reason; correct the patient's contact details in Cliniko, refresh the patient and send the code again."},
	pmsbridge.CauseDeliveryUnavailable: {"Mail server or Twilio unavailable",
		"The mail server or Twilio did not answer or asked us to slow down; the message is retried with backoff.",
		"Nothing to do unless it persists; then check the SMTP server or Twilio's status page and replay."},
	pmsbridge.CauseInternal: {"Internal error",
		"A bug or an unexpected state on our side (e.g. Redis briefly unreachable).",
		"Look at the logs for the task id; replay once the cause is fixed."},
}
