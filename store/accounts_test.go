package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
)

// TestSubscriptionShards: the accounts are the (subscription, shard) pairs of
// active practitioners' saved keys, each once; an account's key holders are
// its active practitioners with a key of that shard.
func TestSubscriptionShards(t *testing.T) {
	t.Parallel()
	b := setup(t)
	subA, subB := b.subscription(t, "Clinic A"), b.subscription(t, "Clinic B")
	a1 := b.practitioner(t, subA.ID, "a1@example.com")
	a2 := b.practitioner(t, subA.ID, "a2@example.com")
	a3 := b.practitioner(t, subA.ID, "a3@example.com") // uk2 key
	a4 := b.practitioner(t, subA.ID, "a4@example.com") // no key
	a5 := b.practitioner(t, subA.ID, "a5@example.com") // deactivated
	b1 := b.practitioner(t, subB.ID, "b1@example.com")
	_ = a4
	admin := store.ClinikoUser{ID: "1", Role: "administrator", Shard: "au1"}
	must(t, b.store.SetClinikoKey(b.ctx, a1.ID, "k1-au1", admin))
	must(t, b.store.SetClinikoKey(b.ctx, a2.ID, "k2-au1", store.ClinikoUser{ID: "2", Role: "practitioner", Shard: "au1"}))
	must(t, b.store.SetClinikoKey(b.ctx, a3.ID, "k3-uk2", store.ClinikoUser{ID: "3", Role: "administrator", Shard: "uk2"}))
	must(t, b.store.SetClinikoKey(b.ctx, a5.ID, "k5-ca1", store.ClinikoUser{ID: "5", Shard: "ca1"}))
	must(t, b.store.SetClinikoKey(b.ctx, b1.ID, "k6-au1", store.ClinikoUser{ID: "6", Shard: "au1"}))
	must(t, b.store.Deactivate(b.ctx, a5.ID))

	got, err := b.store.SubscriptionShards(b.ctx)
	must(t, err)
	want := []store.SubscriptionShard{{subA.ID, "au1"}, {subA.ID, "uk2"}, {subB.ID, "au1"}}
	slices.SortFunc(want, func(x, y store.SubscriptionShard) int {
		return strings.Compare(x.SubscriptionID+"/"+x.Shard, y.SubscriptionID+"/"+y.Shard)
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SubscriptionShards (-want +got):\n%s", diff)
	}

	holders, err := b.store.AccountKeyHolders(b.ctx, subA.ID, "au1")
	must(t, err)
	wantHolders := []store.KeyHolder{{a1.ID, admin}, {a2.ID, store.ClinikoUser{ID: "2", Role: "practitioner", Shard: "au1"}}}
	slices.SortFunc(wantHolders, func(x, y store.KeyHolder) int { return strings.Compare(x.PractitionerID, y.PractitionerID) })
	if diff := cmp.Diff(wantHolders, holders); diff != "" {
		t.Errorf("AccountKeyHolders(A, au1) (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		desc, sub, shard string
		want             int
	}{
		{"other shard", subA.ID, "uk2", 1},
		{"deactivated holder only", subA.ID, "ca1", 0},
		{"other subscription", subB.ID, "au1", 1},
		{"no such subscription", "sub_nope", "au1", 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			hs, err := b.store.AccountKeyHolders(b.ctx, tc.sub, tc.shard)
			if err != nil || len(hs) != tc.want {
				t.Errorf("AccountKeyHolders = %+v, %v; want %d", hs, err, tc.want)
			}
		})
	}
	if _, err := b.store.AccountKeyHolders(b.ctx, subA.ID, "au1:x"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad shard: err = %v, want ErrInvalid", err)
	}

	// A key known to be of another Cliniko account than the one the
	// subscription's au1 patients come from is left out; keys whose account
	// is not known stay.
	now := time.Now()
	clinic := store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: "101", Name: "Clinic A"}}, now)
	other := store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: "909", Name: "Elsewhere"}}, now)
	if _, same, err := b.store.ClaimClinikoAccount(b.ctx, subA.ID, clinic); err != nil || !same {
		t.Fatalf("claim: %v, %v", same, err)
	}
	must(t, b.store.SetClinikoKey(b.ctx, a2.ID, "k2-au1", store.ClinikoUser{ID: "2", Role: "practitioner", Shard: "au1", Account: other}))
	holders, err = b.store.AccountKeyHolders(b.ctx, subA.ID, "au1")
	must(t, err)
	if len(holders) != 1 || holders[0].PractitionerID != a1.ID {
		t.Errorf("with a key of another account: %+v, want only %s", holders, a1.ID)
	}
	must(t, b.store.SetClinikoKey(b.ctx, a2.ID, "k2-au1", store.ClinikoUser{ID: "2", Role: "practitioner", Shard: "au1", Account: clinic}))
	if holders, err = b.store.AccountKeyHolders(b.ctx, subA.ID, "au1"); err != nil || len(holders) != 2 {
		t.Errorf("with a key of the clinic's account: %+v, %v; want both", holders, err)
	}

	// A removed key leaves the account when it was its only one.
	must(t, b.store.DeleteClinikoKey(b.ctx, a3.ID))
	got, err = b.store.SubscriptionShards(b.ctx)
	must(t, err)
	if len(got) != 2 || slices.Contains(got, store.SubscriptionShard{SubscriptionID: subA.ID, Shard: "uk2"}) {
		t.Errorf("after removing the uk2 key: %+v", got)
	}
}
