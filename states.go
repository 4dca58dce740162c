package pmsbridge

// PDFState is where the write-back of one programme version's PDF to the
// patient's Cliniko files stands (pdf.state in the patient JSON; part of
// the contract).
type PDFState string

// The PDF states.
const (
	PDFPending   PDFState = "pending"    // queued, being sent, or waiting to retry
	PDFUploaded  PDFState = "uploaded"   // in the patient's Cliniko files; final
	PDFFailed    PDFState = "failed"     // failed for good; a cause and a reason say why
	PDFNotLinked PDFState = "not_linked" // the patient has no Cliniko link: nowhere to send it
)

// ImportState is where the import of a Cliniko patient after a click on
// "Open in" stands (state in GET /imports/status; part of the contract).
type ImportState string

// The import states.
const (
	ImportPending ImportState = "pending" // queued, running, or waiting to retry
	ImportDone    ImportState = "done"    // linked: the patient can be opened
	ImportFailed  ImportState = "failed"  // failed for good; a cause says why
	// ImportNone means no import of that patient is on record. It is never
	// answered as such: the receiver starts an import, the status route
	// answers failed.
	ImportNone ImportState = "none"
)

// Channel is how a message reaches a patient (channel in code_delivery in
// the patient JSON, and the send-code form's channel; part of the
// contract).
type Channel string

// The channels.
const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
)

// Valid reports whether c is a known channel.
func (c Channel) Valid() bool { return c == ChannelEmail || c == ChannelSMS }

// MessageState is where one message to a patient (their programme code)
// stands (state in code_delivery in the patient JSON; part of the
// contract).
type MessageState string

// The message states.
const (
	MessagePending MessageState = "pending" // asked for: queued, being sent, or waiting to retry
	MessageSent    MessageState = "sent"    // accepted by the mail server or Twilio; final
	MessageFailed  MessageState = "failed"  // failed for good; a cause and a reason say why
)
