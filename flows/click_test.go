package flows

import (
	"errors"
	"testing"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// TestOpenLinkedFastPath: the fast path answers a linked patient as Open does (the
// patient, with a refresh queued; a colleague's patient refused naming the
// owner), and leaves the rest to Open with the practitioner it found.
func TestOpenLinkedFastPath(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.importNow(t, b.click(t, b.pr, sandbox.DemoPatientID))
	colleague := b.practitioner(t, "colleague@clinic.example", "Priya Raman", sandbox.DemoPractitionerKey)
	noKey := b.practitioner(t, "nokey@clinic.example", "Sam Keyless", "")
	session := func(pr store.Practitioner) string {
		tok, _, err := b.st.CreateSession(b.ctx, pr.ID, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	owner := session(b.pr)
	lc, err := b.f.OpenLinked(b.ctx, owner, sandbox.DemoPatientID)
	if err != nil || lc.PatientID != id {
		t.Fatalf("owner's click: %+v, %v", lc, err)
	}
	waitFor(t, "the background refresh", func() bool {
		st, _, err := b.jobs.TaskState(b.ctx, jobs.QueueImport, "refresh:"+id)
		return err == nil && st == jobs.StatePending
	})
	lc, err = b.f.OpenLinked(b.ctx, session(colleague), sandbox.DemoPatientID)
	var ns *NotSharedError
	if !errors.As(err, &ns) || ns.Owner != "Dr Demo" || lc.Practitioner == nil || lc.Practitioner.ID != colleague.ID || lc.PatientID != "" {
		t.Errorf("a colleague's click: %+v, %v; want NotSharedError naming Dr Demo, with the colleague", lc, err)
	}

	for _, tc := range []struct {
		desc    string
		pr      store.Practitioner
		cid     string
		withKey bool
	}{
		{"not linked", b.pr, "987654", true},
		{"no key", noKey, sandbox.DemoPatientID, false},
	} {
		lc, err := b.f.OpenLinked(b.ctx, session(tc.pr), tc.cid)
		if err != nil || lc.Practitioner == nil || lc.Practitioner.ID != tc.pr.ID || (lc.ClinikoUser != nil) != tc.withKey || lc.PatientID != "" {
			t.Errorf("%s: %+v, %v; want the practitioner, left to Open", tc.desc, lc, err)
		}
	}

	if lc, err := b.f.OpenLinked(b.ctx, "no-such-session", sandbox.DemoPatientID); err != nil || lc.Practitioner != nil {
		t.Errorf("no session: %+v, %v; want no practitioner", lc, err)
	}
	tok := session(colleague)
	if err := b.st.Deactivate(b.ctx, colleague.ID); err != nil {
		t.Fatal(err)
	}
	if lc, err := b.f.OpenLinked(b.ctx, tok, sandbox.DemoPatientID); err != nil || lc.Practitioner != nil {
		t.Errorf("deactivated: %+v, %v; want no practitioner", lc, err)
	}
}
