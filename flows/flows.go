// Package flows holds pmsbridge's workflows: what happens when a
// practitioner opens a patient from Cliniko (and follows the import), assigns
// a programme (from the form or the platform's webhook; its code goes to the
// patient), sends a PDF or the patient's code again, saves a Cliniko key (and
// the jobs it unblocks replay), shares, unshares or transfers a patient, and
// downloads a programme's PDF.
//
// A flow is built over explicit dependencies (the store, the jobs client,
// the Cliniko client, the clock and a logger), takes a context for every
// I/O, and returns domain results and typed errors (errors.go). Flows know
// nothing of HTTP: the bridge parses a request, calls one flow and renders
// what it returns.
package flows

import (
	"context"
	"log/slog"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Deps are what the flows use. The zero value of each optional field means
// its default.
type Deps struct {
	Store   *store.Store
	Jobs    *jobs.Client
	Cliniko *cliniko.Client
	// Codes asks for the messages that send patients their codes (on
	// assign and on "send the code again"). Default: Codes over Jobs with
	// no channel configured (every first version is a hand-over).
	Codes *jobs.Codes
	// Log is the logger of work outside a request; a request's own logger
	// (pmsbridge.Logger of its context) is used where there is one.
	// Default: discard.
	Log *slog.Logger
	// AccessURL is where patients open programmes (printed on PDFs).
	AccessURL string
	// Region is this deployment's region code ("au"); Regions are every
	// region's deployment, to say where a clinic of another country belongs
	// (data residency).
	Region  string
	Regions []Region
	// ImportWait is how long Open waits for a new patient's import before
	// it answers "still importing". Default 2s.
	ImportWait time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// After is the timer of waits (Open's look at the import every few
	// milliseconds), so that tests move time by hand. Default time.After.
	After func(time.Duration) <-chan time.Time
}

// Flows runs the workflows. It is safe for concurrent use.
type Flows struct {
	Deps
	// refreshSlots bounds the background refreshes that clicks start.
	refreshSlots chan struct{}
}

// New returns the flows over d.
func New(d Deps) *Flows {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.ImportWait == 0 {
		d.ImportWait = 2 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.After == nil {
		d.After = time.After
	}
	if d.Codes == nil && d.Jobs != nil {
		d.Codes = jobs.NewCodes(d.Jobs, jobs.CodesConfig{})
	}
	return &Flows{Deps: d, refreshSlots: make(chan struct{}, 64)}
}

// logger is the logger for work done under ctx: the request's, else the
// flows' own.
func (f *Flows) logger(ctx context.Context) *slog.Logger { return pmsbridge.Logger(ctx, f.Log) }

// audit records a practitioner's action on a patient; a failure to record it
// does not undo the action.
func (f *Flows) audit(ctx context.Context, practitionerID, patientID, op, detail string) {
	if err := f.Store.Audit(ctx, store.AuditEntry{PractitionerID: practitionerID, PatientID: patientID, Op: op, Detail: detail}); err != nil {
		f.logger(ctx).Warn("audit", "err", err)
	}
}
