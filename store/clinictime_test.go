package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
)

func TestSubscriptionTimeZone(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.DefaultTimeZone = "Australia/Sydney" })
	def := b.subscription(t, "Bondi Physio")
	b.clock.Advance(time.Second) // listed oldest first
	nz, err := b.store.CreateSubscription(b.ctx, "Kiwi Physio", store.WithTimeZone("Pacific/Auckland"))
	must(t, err)
	got := []any{def.TimeZone, def.TimeZoneSource, def.TimeZoneSet(), nz.TimeZone, nz.TimeZoneSource, nz.TimeZoneSet()}
	want := []any{"Australia/Sydney", store.TimeZoneDefault, false, "Pacific/Auckland", store.TimeZoneChosen, true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("created [zone source set]×2 (-want +got):\n%s", diff)
	}
	again, err := b.store.GetSubscription(b.ctx, nz.ID)
	must(t, err)
	if diff := cmp.Diff(nz, again); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	list, err := b.store.ListSubscriptions(b.ctx)
	must(t, err)
	if diff := cmp.Diff([]store.Subscription{def, nz}, list); diff != "" {
		t.Errorf("ListSubscriptions (-want +got):\n%s", diff)
	}

	// Cliniko's zone fills the default one, once; a chosen one stays.
	filled, changed, err := b.store.FillSubscriptionTimeZone(b.ctx, def.ID, "Australia/Perth")
	must(t, err)
	if !changed || filled.TimeZone != "Australia/Perth" || filled.TimeZoneSource != store.TimeZoneFromCliniko || !filled.TimeZoneSet() {
		t.Errorf("fill of the default = %+v, changed %v", filled, changed)
	}
	for _, id := range []string{def.ID, nz.ID} {
		before, _ := b.store.GetSubscription(b.ctx, id)
		after, changed, err := b.store.FillSubscriptionTimeZone(b.ctx, id, "Europe/London")
		must(t, err)
		if changed || after.TimeZone != before.TimeZone || after.TimeZoneSource != before.TimeZoneSource {
			t.Errorf("fill over a set zone changed %s: %+v → %+v", id, before, after)
		}
	}

	// A person's choice wins over Cliniko's; "" goes back to the default.
	set, err := b.store.SetSubscriptionTimeZone(b.ctx, def.ID, "Australia/Adelaide")
	must(t, err)
	if set.TimeZone != "Australia/Adelaide" || set.TimeZoneSource != store.TimeZoneChosen {
		t.Errorf("set = %+v", set)
	}
	reset, err := b.store.SetSubscriptionTimeZone(b.ctx, def.ID, "")
	must(t, err)
	if reset.TimeZone != "Australia/Sydney" || reset.TimeZoneSet() {
		t.Errorf("reset = %+v, want the region's default, not set", reset)
	}
	if _, changed, _ := b.store.FillSubscriptionTimeZone(b.ctx, def.ID, "Australia/Brisbane"); !changed {
		t.Error("after a reset, Cliniko's zone did not fill it")
	}

	// Bad input: a clear error, nothing created or changed.
	for _, bad := range []string{"Sydney", "Local", "Mars/Base", "Europe/London "} {
		if _, err := b.store.CreateSubscription(b.ctx, "X", store.WithTimeZone(bad)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("create with %q: err = %v, want ErrInvalid", bad, err)
		}
		if _, err := b.store.SetSubscriptionTimeZone(b.ctx, nz.ID, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("set %q: err = %v, want ErrInvalid", bad, err)
		}
		if _, _, err := b.store.FillSubscriptionTimeZone(b.ctx, nz.ID, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("fill %q: err = %v, want ErrInvalid", bad, err)
		}
	}
	var ve *store.ValidationError
	_, err = b.store.CreateSubscription(b.ctx, " ", store.WithTimeZone("Nowhere/Land"))
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Errorf("empty name and bad zone: err = %v, want both problems", err)
	}
	if list, _ := b.store.ListSubscriptions(b.ctx); len(list) != 2 {
		t.Errorf("%d subscriptions after refused creations, want 2", len(list))
	}
	if now, _ := b.store.GetSubscription(b.ctx, nz.ID); now.TimeZone != "Pacific/Auckland" {
		t.Errorf("refused changes changed the zone to %q", now.TimeZone)
	}
	if _, err := b.store.SetSubscriptionTimeZone(b.ctx, "sub_nope", "UTC"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown subscription: err = %v, want ErrNotFound", err)
	}
	if _, _, err := b.store.FillSubscriptionTimeZone(b.ctx, "sub_nope", "UTC"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("fill unknown subscription: err = %v, want ErrNotFound", err)
	}
}

// TestSubscriptionTimeZoneOfOldRecords: a subscription stored before
// subscriptions had a time zone reads as the region's default, not set.
func TestSubscriptionTimeZoneOfOldRecords(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.DefaultTimeZone = "America/Toronto" })
	must(t, b.rdb.Set(b.ctx, "pmsb:sub:sub_old", `{"id":"sub_old","name":"Old Clinic","created_at":"2025-01-01T00:00:00Z"}`, 0).Err())
	sub, err := b.store.GetSubscription(b.ctx, "sub_old")
	must(t, err)
	if sub.TimeZone != "America/Toronto" || sub.TimeZoneSource != store.TimeZoneDefault {
		t.Errorf("old record = %+v", sub)
	}
	filled, changed, err := b.store.FillSubscriptionTimeZone(b.ctx, "sub_old", "America/Vancouver")
	must(t, err)
	if !changed || filled.TimeZone != "America/Vancouver" || filled.Name != "Old Clinic" {
		t.Errorf("fill of an old record = %+v, %v", filled, changed)
	}
	at := time.Date(2026, 11, 30, 3, 2, 0, 0, time.UTC)
	if got := filled.ClinicTime().DateTime(at) + " " + filled.ClinicTime().Zone(at); got != "29 Nov 2026, 19:02 PST" {
		t.Errorf("ClinicTime = %q", got)
	}
	if got := (store.Subscription{TimeZone: "Not/AZone"}).ClinicTime().Zone(at); got != "UTC" {
		t.Errorf("a zone that does not load formats in %q, want UTC", got)
	}
}

func TestDefaultTimeZoneOption(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if sub := b.subscription(t, "No region"); sub.TimeZone != "UTC" || sub.TimeZoneSet() {
		t.Errorf("without DefaultTimeZone: %+v, want UTC", sub)
	}
	if _, err := store.New(b.rdb, store.Options{DefaultTimeZone: "Atlantis"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a bad DefaultTimeZone: err = %v, want ErrInvalid", err)
	}
}

// TestFillTimeZoneConcurrently: of many key saves filling at once, exactly
// one fills the zone; a person's choice made meanwhile is never
// overwritten.
func TestFillTimeZoneConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Busy")
	zones := []string{"Australia/Perth", "Australia/Darwin", "Australia/Hobart", "Australia/Brisbane"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fills []string
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			z := zones[i%len(zones)]
			_, changed, err := b.store.FillSubscriptionTimeZone(b.ctx, sub.ID, z)
			if err != nil {
				t.Error(err)
			}
			if changed {
				mu.Lock()
				fills = append(fills, z)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got, _ := b.store.GetSubscription(b.ctx, sub.ID)
	if len(fills) != 1 || got.TimeZone != fills[0] {
		t.Errorf("fills %v, zone %q; want exactly one fill, kept", fills, got.TimeZone)
	}
}
