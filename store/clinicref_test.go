package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/store"
)

// TestClinicRef: a clinic reference names its subscription, is not its id,
// keeps working after a key rotation, and made-up references name nothing.
func TestClinicRef(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Harbour Physio")
	ref, err := b.store.ClinicRef(b.ctx, sub.ID)
	must(t, err)
	if len(ref) != 12 || strings.Contains(sub.ID, ref) {
		t.Errorf("reference %q of %s", ref, sub.ID)
	}
	got, err := b.store.ClinicByRef(b.ctx, ref)
	if err != nil || got.ID != sub.ID || got.Name != "Harbour Physio" {
		t.Errorf("ClinicByRef = %+v, %v", got, err)
	}
	if u := b.store.ClinicAccessURL(b.ctx, "https://au.physitrack.com/access", sub.ID); u != "https://au.physitrack.com/access?c="+ref {
		t.Errorf("access URL %q", u)
	}
	rotated := b.reopen(t, func(o *store.Options) {
		keys, err := store.NewKeyring(testKey(2), testKey(1))
		must(t, err)
		o.Keys = keys
	})
	if got, err := rotated.ClinicByRef(b.ctx, ref); err != nil || got.ID != sub.ID {
		t.Errorf("after a rotation: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "000000000000", "not-hex-ref!", ref + "0", sub.ID} {
		if _, err := b.store.ClinicByRef(b.ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ClinicByRef(%q) = %v, want ErrNotFound", bad, err)
		}
	}
}
