package store_test

import (
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/store"
)

// TestMatchAccount: a key is compared with the clinic's account on its
// shard; its probe decides when either is unknown; a key on a shard where
// the clinic has no account, while it has one elsewhere, is another
// account's.
func TestMatchAccount(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	demo := store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: "101", Name: "Demo"}}, at)
	other := store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: "202", Name: "Other"}}, at)
	uk := store.NewClinikoAccount("uk2", []store.ClinikoBusiness{{ID: "303", Name: "Harbour"}}, at)
	clinic := map[string]store.ClinikoAccount{"au1": demo}
	for _, tc := range []struct {
		desc   string
		u      store.ClinikoUser
		clinic map[string]store.ClinikoAccount
		want   store.AccountMatch
	}{
		{"the clinic's", store.ClinikoUser{Shard: "au1", Account: demo}, clinic, store.AccountSame},
		{"another on the same shard", store.ClinikoUser{Shard: "au1", Account: other}, clinic, store.AccountOther},
		{"another shard", store.ClinikoUser{Shard: "uk2", Account: uk}, clinic, store.AccountOther},
		{"unread account, probe saw the patient", store.ClinikoUser{Shard: "au1", ClinicProbe: store.ProbeSees}, clinic, store.AccountSame},
		{"unread account, probe did not", store.ClinikoUser{Shard: "au1", ClinicProbe: store.ProbeNotFound}, clinic, store.AccountOther},
		{"unread account, no probe", store.ClinikoUser{Shard: "au1"}, clinic, store.AccountUnknown},
		{"the clinic has none yet", store.ClinikoUser{Shard: "au1", Account: other}, map[string]store.ClinikoAccount{}, store.AccountUnknown},
	} {
		if got := store.MatchAccount(tc.u, tc.clinic); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.desc, got, tc.want)
		}
	}
}

// TestSampleLinkedPatient: a linked patient that Cliniko still showed is
// picked; archived ones are not.
func TestSampleLinkedPatient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	if _, ok, err := b.store.SampleLinkedPatient(b.ctx, sub.ID, "au1"); err != nil || ok {
		t.Errorf("no links: %v, %v", ok, err)
	}
	archived := b.patient(t, pr, "1", "A")
	must(t, b.store.MarkLinkArchived(b.ctx, archived.ID, true))
	if _, ok, err := b.store.SampleLinkedPatient(b.ctx, sub.ID, "au1"); err != nil || ok {
		t.Errorf("only an archived one: %v, %v", ok, err)
	}
	b.patient(t, pr, "2", "B")
	if id, ok, err := b.store.SampleLinkedPatient(b.ctx, sub.ID, "au1"); err != nil || !ok || id != "2" {
		t.Errorf("SampleLinkedPatient = %q, %v, %v; want 2", id, ok, err)
	}
}
