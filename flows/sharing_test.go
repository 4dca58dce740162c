package flows

import (
	"errors"
	"testing"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
)

// TestSharing: only the owner shares, unshares and transfers (the others
// are told whose patient it is); colleagues are found by their login in
// the same clinic; after a transfer the old owner may open the patient only
// if it is still shared with them.
func TestSharing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.patient(t)
	colleague := b.practitioner(t, "colleague@clinic.example", "Priya Raman", sandbox.DemoPractitionerKey)
	b.practitioner(t, "third@clinic.example", "Dr Third", "")
	if _, err := b.f.Share(b.ctx, b.pr, p, "colleague@clinic.example", ShareOn); err != nil {
		t.Fatal(err)
	}
	shared, err := b.f.OpenPatient(b.ctx, colleague, p.ID)
	if err != nil {
		t.Fatalf("the colleague cannot open the shared patient: %v", err)
	}
	var oo *OwnerOnlyError
	if _, err := b.f.Share(b.ctx, colleague, shared, "third@clinic.example", ShareOn); !errors.As(err, &oo) || oo.Owner != "Dr Demo" {
		t.Errorf("a colleague shares on: %v, want OwnerOnlyError naming Dr Demo", err)
	}
	if _, err := b.f.Transfer(b.ctx, colleague, shared, "colleague@clinic.example"); !errors.As(err, &oo) {
		t.Errorf("a colleague transfers to themselves: %v, want OwnerOnlyError", err)
	}
	_, err = b.f.Share(b.ctx, b.pr, p, "nobody@nowhere.example", ShareOn)
	wantRefusal(t, "an unknown email", err, Invalid, "No colleague in your clinic")
	_, err = b.f.Share(b.ctx, b.pr, p, "demo@clinic.example", ShareOn)
	wantRefusal(t, "with the owner", err, Invalid, "already owns this patient")
	_, err = b.f.Share(b.ctx, b.pr, p, "third@clinic.example", ShareUnknown)
	wantRefusal(t, "neither share nor unshare", err, Invalid, "Choose share or unshare.")
	if _, err := b.f.Share(b.ctx, b.pr, p, "colleague@clinic.example", ShareOff); err != nil {
		t.Fatal(err)
	}
	var ns *NotSharedError
	if _, err := b.f.OpenPatient(b.ctx, colleague, p.ID); !errors.As(err, &ns) {
		t.Errorf("after unsharing: %v, want NotSharedError", err)
	}
	stillMine, err := b.f.Transfer(b.ctx, b.pr, p, "colleague@clinic.example")
	if err != nil || stillMine {
		t.Errorf("Transfer = %v, %v; want done, no longer the old owner's to open", stillMine, err)
	}
	if _, err := b.f.OpenPatient(b.ctx, colleague, p.ID); err != nil {
		t.Errorf("the new owner cannot open the patient: %v", err)
	}
}
