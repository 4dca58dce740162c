package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/store"
)

// TestCoordinationKeysUnderPrefix: the keys of locks, debounces, period
// claims, counters and the Cliniko budget are the store's, under the
// configured prefix.
func TestCoordinationKeysUnderPrefix(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.Prefix = "region7:" })
	if _, ok, err := b.store.LockUpload(b.ctx, "prg_a", 1, time.Minute); err != nil || !ok {
		t.Fatalf("LockUpload = %v, %v", ok, err)
	}
	if free, err := b.store.DebounceRefresh(b.ctx, "pat_a", time.Minute); err != nil || !free {
		t.Fatalf("DebounceRefresh = %v, %v", free, err)
	}
	if first, err := b.store.ClaimPeriod(b.ctx, "sync", b.clock.Now(), time.Minute); err != nil || !first {
		t.Fatalf("ClaimPeriod = %v, %v", first, err)
	}
	if err := b.store.CountDone(b.ctx, "pdf", "programme:upload_pdf"); err != nil {
		t.Fatal(err)
	}
	keys := b.rdb.Keys(b.ctx, "*").Val()
	if len(keys) != 4 {
		t.Errorf("keys %v, want 4", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "region7:") {
			t.Errorf("key %q is not under the prefix", k)
		}
	}
	if got, want := b.store.ClinikoBudgetKey("au1:42"), "region7:cliniko:au1:42"; got != want {
		t.Errorf("ClinikoBudgetKey = %q, want %q", got, want)
	}
}

// TestUploadLock: one holder at a time; a holder whose lock ran out and
// was taken by another can neither renew nor release the other's lock.
func TestUploadLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, ok, err := b.store.LockUpload(b.ctx, "prg_a", 1, time.Minute)
	if err != nil || !ok {
		t.Fatalf("first lock: %v, %v", ok, err)
	}
	if _, ok, err := b.store.LockUpload(b.ctx, "prg_a", 1, time.Minute); err != nil || ok {
		t.Fatalf("second lock while held: %v, %v; want refused", ok, err)
	}
	if _, ok, err := b.store.LockUpload(b.ctx, "prg_a", 2, time.Minute); err != nil || !ok {
		t.Fatalf("another version: %v, %v; want its own lock", ok, err)
	}
	if err := a.Renew(b.ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	// a's lock runs out (as when its worker stalled) and c takes it.
	keys := b.rdb.Keys(b.ctx, "pmsb:lock:*v1").Val()
	if len(keys) != 1 {
		t.Fatalf("lock keys %v", keys)
	}
	b.rdb.Del(b.ctx, keys[0])
	c, ok, err := b.store.LockUpload(b.ctx, "prg_a", 1, time.Minute)
	if err != nil || !ok {
		t.Fatalf("lock after expiry: %v, %v", ok, err)
	}
	if err := a.Renew(b.ctx); !errors.Is(err, store.ErrLockLost) {
		t.Errorf("stale renew: %v, want ErrLockLost", err)
	}
	if err := a.Release(b.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.store.LockUpload(b.ctx, "prg_a", 1, time.Minute); ok {
		t.Fatal("a stale holder's release freed the new holder's lock")
	}
	if err := c.Release(b.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.store.LockUpload(b.ctx, "prg_a", 1, time.Minute); err != nil || !ok {
		t.Errorf("lock after release: %v, %v", ok, err)
	}
	if _, _, err := b.store.LockUpload(b.ctx, "bad id!", 1, time.Minute); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad id: %v, want ErrInvalid", err)
	}
}

// TestDebounceAndPeriodClaims: the first caller wins until the time to
// live has passed; 100 callers at once have exactly one winner.
func TestDebounceAndPeriodClaims(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wins := make(chan bool, 100)
	for range 100 {
		go func() {
			free, err := b.store.DebounceRefresh(b.ctx, "pat_a", time.Minute)
			if err != nil {
				t.Error(err)
			}
			wins <- free
		}()
	}
	n := 0
	for range 100 {
		if <-wins {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of 100 concurrent refreshes were let through, want 1", n)
	}
	if free, _ := b.store.DebounceRefresh(b.ctx, "pat_b", time.Minute); !free {
		t.Error("another patient was debounced")
	}
	start := time.Date(2026, 11, 22, 10, 15, 0, 0, time.UTC)
	for i, want := range []bool{true, false} {
		if first, err := b.store.ClaimPeriod(b.ctx, "sync", start, time.Hour); err != nil || first != want {
			t.Errorf("claim %d: %v, %v; want %v", i, first, err, want)
		}
	}
	if first, _ := b.store.ClaimPeriod(b.ctx, "sync", start.Add(15*time.Minute), time.Hour); !first {
		t.Error("the next period was already claimed")
	}
}

// TestDoneCounts: counted per queue and type for the store clock's day.
func TestDoneCounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, qt := range [][2]string{{"pdf", "programme:upload_pdf"}, {"import", "cliniko:import_patient"}, {"pdf", "programme:upload_pdf"}} {
		if err := b.store.CountDone(b.ctx, qt[0], qt[1]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.store.DoneToday(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DoneCount{{Queue: "import", Type: "cliniko:import_patient", N: 1}, {Queue: "pdf", Type: "programme:upload_pdf", N: 2}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("DoneToday = %+v, want %+v", got, want)
	}
	b.clock.Advance(24 * time.Hour)
	if got, _ := b.store.DoneToday(b.ctx); len(got) != 0 {
		t.Errorf("the next day starts with %+v, want nothing", got)
	}
}
