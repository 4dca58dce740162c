package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
)

var checked = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func account(shard string, bs ...store.ClinikoBusiness) store.ClinikoAccount {
	return store.NewClinikoAccount(shard, bs, checked)
}

func TestNewClinikoAccount(t *testing.T) {
	t.Parallel()
	a := store.NewClinikoAccount(" AU1 ", []store.ClinikoBusiness{
		{ID: "1002", Name: " Bondi ", CountryCode: "au", TimeZone: "Australia/Sydney"},
		{ID: "", Name: "no id"},
		{ID: "999", Name: "Perth", CountryCode: "AU", TimeZone: "Perth"}, // a label, not IANA
		{ID: "1002", Name: "Bondi again"},
	}, checked.In(time.FixedZone("x", 3600)))
	want := store.ClinikoAccount{Shard: "au1", CheckedAt: checked, Businesses: []store.ClinikoBusiness{
		{ID: "999", Name: "Perth", CountryCode: "AU"},
		{ID: "1002", Name: "Bondi", CountryCode: "AU", TimeZone: "Australia/Sydney"},
	}}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got := []any{a.Known(), a.ID(), a.Name(), a.Countries(), a.TimeZone()}
	if diff := cmp.Diff([]any{true, "au1:999,1002", "Perth, Bondi", []string{"AU"}, ""}, got); diff != "" {
		t.Errorf("[known id name countries zone] (-want +got):\n%s", diff)
	}
}

func TestClinikoAccountSameAndZone(t *testing.T) {
	t.Parallel()
	syd := store.ClinikoBusiness{ID: "101", Name: "Sydney CBD", CountryCode: "AU", TimeZone: "Australia/Sydney"}
	bondi := store.ClinikoBusiness{ID: "102", Name: "Bondi", CountryCode: "AU", TimeZone: "Australia/Sydney"}
	perth := store.ClinikoBusiness{ID: "103", Name: "Perth", CountryCode: "AU", TimeZone: "Australia/Perth"}
	akl := store.ClinikoBusiness{ID: "201", Name: "Auckland", CountryCode: "NZ", TimeZone: "Pacific/Auckland"}
	tests := []struct {
		desc     string
		a, b     store.ClinikoAccount
		wantSame bool
	}{
		{"same businesses", account("au1", syd), account("au1", syd), true},
		{"a location was added", account("au1", syd), account("au1", syd, bondi), true},
		{"a location was closed", account("au1", syd, bondi), account("au1", bondi), true},
		{"another clinic", account("au1", syd), account("au1", akl), false},
		{"same ids on another shard", account("au1", syd), account("au2", syd), false},
		{"unknown account", account("au1"), account("au1"), false},
		{"one side unknown", account("au1", syd), store.ClinikoAccount{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := tt.a.Same(tt.b); got != tt.wantSame || tt.b.Same(tt.a) != got {
				t.Errorf("Same = %v, want %v both ways", got, tt.wantSame)
			}
		})
	}
	zones := []struct {
		desc string
		a    store.ClinikoAccount
		want string
	}{
		{"one business", account("au1", perth), "Australia/Perth"},
		{"all in one zone", account("au1", syd, bondi), "Australia/Sydney"},
		{"zones differ", account("au1", syd, perth), ""},
		{"one without a zone", account("au1", syd, store.ClinikoBusiness{ID: "104"}), ""},
		{"unknown", store.ClinikoAccount{}, ""},
	}
	for _, z := range zones {
		if got := z.a.TimeZone(); got != z.want {
			t.Errorf("%s: TimeZone() = %q, want %q", z.desc, got, z.want)
		}
	}
	if got := account("au1", syd, akl).Countries(); !cmp.Equal(got, []string{"AU", "NZ"}) {
		t.Errorf("Countries() = %v", got)
	}
}

func TestClaimClinikoAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	ours := account("au1", store.ClinikoBusiness{ID: "101", Name: "Demo Physio Clinic", CountryCode: "AU", TimeZone: "Australia/Sydney"})
	grown := account("au1", store.ClinikoBusiness{ID: "101", Name: "Demo Physio Clinic"}, store.ClinikoBusiness{ID: "102", Name: "Second site"})
	theirs := account("au1", store.ClinikoBusiness{ID: "555", Name: "Another Clinic"})
	uk := account("uk2", store.ClinikoBusiness{ID: "836447129235881301", Name: "Harbour Street"})

	if _, ok, err := b.store.SubscriptionClinikoAccount(b.ctx, sub.ID, "au1"); ok || err != nil {
		t.Fatalf("before any claim: ok %v err %v", ok, err)
	}
	steps := []struct {
		desc      string
		claim     store.ClinikoAccount
		wantSame  bool
		wantAfter store.ClinikoAccount // recorded on claim's shard afterwards
	}{
		{"the first key claims the shard", ours, true, ours},
		{"another clinic's key is told apart; nothing changes", theirs, false, ours},
		{"the same account with a new location refreshes the record", grown, true, grown},
		{"another clinic still told apart by the remaining location", theirs, false, grown},
		{"another shard is claimed on its own", uk, true, uk},
	}
	for _, st := range steps {
		inForce, same, err := b.store.ClaimClinikoAccount(b.ctx, sub.ID, st.claim)
		must(t, err)
		got, ok, err := b.store.SubscriptionClinikoAccount(b.ctx, sub.ID, st.claim.Shard)
		must(t, err)
		if same != st.wantSame || !ok || !cmp.Equal(got, st.wantAfter) || !cmp.Equal(inForce, st.wantAfter) {
			t.Errorf("%s: same %v, recorded %v (ok %v), in force %v; want same %v, %v", st.desc, same, got.ID(), ok, inForce.ID(), st.wantSame, st.wantAfter.ID())
		}
	}
	if got, _, _ := b.store.SubscriptionClinikoAccount(b.ctx, sub.ID, "au1"); got.ID() != "au1:101,102" {
		t.Errorf("au1 account = %q after the uk2 claim", got.ID())
	}

	// Bad input changes nothing.
	if _, _, err := b.store.ClaimClinikoAccount(b.ctx, sub.ID, account("au1")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown account: err = %v, want ErrInvalid", err)
	}
	if _, _, err := b.store.ClaimClinikoAccount(b.ctx, "sub_nope", ours); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown subscription: err = %v, want ErrNotFound", err)
	}
	if n := b.rdb.Exists(b.ctx, "pmsb:sub:sub_nope:cliniko").Val(); n != 0 {
		t.Error("a claim for an unknown subscription wrote a record")
	}
}

// TestClaimClinikoAccountConcurrently: keys of two clinics saved at once
// on a new subscription: one account wins, every claim of it is "same",
// every claim of the other is not.
func TestClaimClinikoAccountConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Race")
	accts := []store.ClinikoAccount{
		account("au1", store.ClinikoBusiness{ID: "101"}),
		account("au1", store.ClinikoBusiness{ID: "202"}),
	}
	type result struct {
		claimed int
		same    bool
	}
	results := make([]result, 40)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, same, err := b.store.ClaimClinikoAccount(b.ctx, sub.ID, accts[i%2])
			if err != nil {
				t.Error(err)
			}
			results[i] = result{i % 2, same}
		}()
	}
	wg.Wait()
	winner, _, _ := b.store.SubscriptionClinikoAccount(b.ctx, sub.ID, "au1")
	for i, r := range results {
		if want := accts[r.claimed].Same(winner); r.same != want {
			t.Errorf("claim %d of %s: same %v, want %v (winner %s)", i, accts[r.claimed].ID(), r.same, want, winner.ID())
		}
	}
}

// TestClinikoUserAccount: the account is saved and read back with the key.
func TestClinikoUserAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	p := b.practitioner(t, sub.ID, "a@example.com")
	u := store.ClinikoUser{ID: "1", Name: "Ann", Role: "administrator", Shard: "au1",
		Account: account("au1", store.ClinikoBusiness{ID: "101", Name: "Demo Physio Clinic", CountryCode: "AU", TimeZone: "Australia/Sydney"})}
	must(t, b.store.SetClinikoKey(b.ctx, p.ID, "key-au1", u))
	_, got, err := b.store.ClinikoKey(b.ctx, p.ID)
	must(t, err)
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("ClinikoKey user (-want +got):\n%s", diff)
	}
	_, got2, ok, err := b.store.PractitionerWithCliniko(b.ctx, p.ID)
	if err != nil || !ok || !got2.Account.Same(u.Account) {
		t.Errorf("PractitionerWithCliniko account = %+v, %v, %v", got2.Account, ok, err)
	}
	// A key saved before accounts were recorded reads as unknown.
	must(t, b.rdb.HSet(b.ctx, "pmsb:prac:"+p.ID+":cliniko", "user", `{"id":"1","shard":"au1"}`).Err())
	old, _, err := b.store.ClinikoUserOf(b.ctx, p.ID)
	if err != nil || old.Account.Known() {
		t.Errorf("old record: account %+v, err %v; want unknown", old.Account, err)
	}
}

func TestAdoptClinikoAccount(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.DefaultTimeZone = "Australia/Sydney" })
	sub := b.subscription(t, "Perth Physio")
	chosen, err := b.store.CreateSubscription(b.ctx, "Chosen", store.WithTimeZone("Australia/Darwin"))
	must(t, err)
	perth := account("au1", store.ClinikoBusiness{ID: "101", Name: "Perth Physio", CountryCode: "AU", TimeZone: "Australia/Perth"})
	other := account("au1", store.ClinikoBusiness{ID: "202", Name: "Other", CountryCode: "AU", TimeZone: "Australia/Adelaide"})

	if c, err := b.store.AdoptClinikoAccount(b.ctx, sub.ID, store.ClinikoAccount{Shard: "au1"}); err != nil || !cmp.Equal(c, store.AccountCheck{}) {
		t.Errorf("unknown account: %+v, %v; want nothing", c, err)
	}
	if _, ok, _ := b.store.SubscriptionClinikoAccount(b.ctx, sub.ID, "au1"); ok {
		t.Error("an unknown account was recorded")
	}
	// Another clinic's key first would claim it: the first key decides.
	c, err := b.store.AdoptClinikoAccount(b.ctx, sub.ID, perth)
	must(t, err)
	if !c.Same || !c.TimeZoneFilled || c.Account.ID() != "au1:101" {
		t.Errorf("first key: %+v", c)
	}
	c, err = b.store.AdoptClinikoAccount(b.ctx, sub.ID, other)
	must(t, err)
	if c.Same || c.TimeZoneFilled || c.Account.ID() != "au1:101" {
		t.Errorf("another clinic's key: %+v", c)
	}
	got, _ := b.store.GetSubscription(b.ctx, sub.ID)
	if got.TimeZone != "Australia/Perth" || got.TimeZoneSource != store.TimeZoneFromCliniko {
		t.Errorf("zone after both keys = %s (%s), want Australia/Perth from Cliniko", got.TimeZone, got.TimeZoneSource)
	}
	// A chosen zone is kept.
	c, err = b.store.AdoptClinikoAccount(b.ctx, chosen.ID, perth)
	must(t, err)
	if got, _ := b.store.GetSubscription(b.ctx, chosen.ID); !c.Same || c.TimeZoneFilled || got.TimeZone != "Australia/Darwin" {
		t.Errorf("chosen zone: %+v, zone %s", c, got.TimeZone)
	}
}
