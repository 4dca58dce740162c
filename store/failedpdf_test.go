package store_test

import (
	"testing"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// TestFailedPDFCounts: a version whose PDF failed for good counts for its
// patient until it is uploaded (a replay's pending keeps it counted until
// it ends).
func TestFailedPDFCounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	pat, other := b.patient(t, pr, "1", "P"), b.patient(t, pr, "2", "Q")
	prg, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
	must(t, err)
	counts := func() map[string]int {
		t.Helper()
		m, err := b.store.FailedPDFCounts(b.ctx, []string{pat.ID, other.ID})
		must(t, err)
		return m
	}
	must(t, b.store.SetPDFState(b.ctx, prg.ID, 1, store.PDFState{State: pmsbridge.PDFFailed, Cause: pmsbridge.CauseClinikoForbidden}))
	if m := counts(); m[pat.ID] != 1 || m[other.ID] != 0 {
		t.Errorf("after a failure: %v", m)
	}
	must(t, b.store.SetPDFState(b.ctx, prg.ID, 1, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: "a1"}))
	if m := counts(); m[pat.ID] != 0 {
		t.Errorf("after the upload: %v", m)
	}
}
