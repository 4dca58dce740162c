package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

func owedIDs(es []store.OwedEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// TestNextOwedPages walks an index in small pages: every entry comes once
// per lap, in order of when it became owed (several share a millisecond),
// the walk wraps to the start, and entries owed after "before" wait.
func TestNextOwedPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var want []string
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("w%d", i)
		if err := b.store.MarkOwed(b.ctx, store.OwedMessage, id); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		if i%3 == 2 {
			b.clock.Advance(time.Millisecond) // three per millisecond
		}
	}
	before := b.clock.Now()
	b.clock.Advance(time.Minute)
	if err := b.store.MarkOwed(b.ctx, store.OwedMessage, "too-new"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for lap := 0; lap < 2; lap++ {
		for range 3 {
			page, err := b.store.NextOwed(b.ctx, store.OwedMessage, before, 3)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, owedIDs(page)...)
		}
	}
	// 7 entries in pages of 3: a page that reaches the end fills up from
	// the start.
	wantWalk := slices.Concat(want, want, want)[:18]
	if diff := cmp.Diff(wantWalk, got); diff != "" {
		t.Errorf("walk (-want +got):\n%s", diff)
	}
	if slices.Contains(got, "too-new") {
		t.Error("an entry owed after before was returned")
	}
	// Marking again keeps the first time; clearing removes.
	if err := b.store.MarkOwed(b.ctx, store.OwedMessage, "w0"); err != nil {
		t.Fatal(err)
	}
	for _, id := range want {
		if err := b.store.ClearOwed(b.ctx, store.OwedMessage, id); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := b.store.CountOwed(b.ctx, store.OwedMessage); n != 1 {
		t.Errorf("after clearing: %d owed, want 1 (too-new)", n)
	}
	page, err := b.store.NextOwed(b.ctx, store.OwedMessage, before, 3)
	if err != nil || len(page) != 0 {
		t.Errorf("empty index before the cut: %v, %v", page, err)
	}
}

// TestPDFStateMaintainsOwedIndex: pending puts a version in the PDF index,
// any other state takes it out.
func TestPDFStateMaintainsOwedIndex(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owed := func() []string {
		t.Helper()
		page, err := b.store.NextOwed(b.ctx, store.OwedPDF, b.clock.Now(), 100)
		if err != nil {
			t.Fatal(err)
		}
		ids := owedIDs(page)
		slices.Sort(ids)
		return ids
	}
	for _, v := range []int{1, 2} {
		if err := b.store.SetPDFState(b.ctx, "prg_a", v, store.PDFState{State: pmsbridge.PDFPending}); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"prg_a:1", "prg_a:2"}, owed()); diff != "" {
		t.Errorf("after pending (-want +got):\n%s", diff)
	}
	if err := b.store.SetPDFState(b.ctx, "prg_a", 1, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: "9"}); err != nil {
		t.Fatal(err)
	}
	if err := b.store.SetPDFState(b.ctx, "prg_a", 2, store.PDFState{State: pmsbridge.PDFFailed, Cause: "cliniko_forbidden"}); err != nil {
		t.Fatal(err)
	}
	if got := owed(); len(got) != 0 {
		t.Errorf("after uploaded and failed: owed %v", got)
	}
	p, v, ok := store.ParsePDFOwedID("prg_a:2")
	if !ok || p != "prg_a" || v != 2 {
		t.Errorf("ParsePDFOwedID = %q %d %v", p, v, ok)
	}
	for _, bad := range []string{"prg_a", "prg_a:0", "prg a:1", ":1"} {
		if _, _, ok := store.ParsePDFOwedID(bad); ok {
			t.Errorf("ParsePDFOwedID(%q) accepted", bad)
		}
	}
}

// TestImportWait: recorded with its index entry, expires with its TTL,
// cleared together with the entry.
func TestImportWait(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := store.ImportWait{PractitionerID: "prac_a", SubscriptionID: "sub_a", Shard: "au1", ClinikoPatientID: "1001"}
	id := store.ImportWaitID("sub_a", "au1", "1001")
	if err := b.store.AwaitImport(b.ctx, w, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := b.store.ImportWaitOf(b.ctx, id)
	if err != nil || got.PractitionerID != "prac_a" || got.ClinikoPatientID != "1001" || got.Since.IsZero() {
		t.Fatalf("ImportWaitOf = %+v, %v", got, err)
	}
	if ttl := b.rdb.TTL(b.ctx, "pmsb:importwait:"+id).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("wait TTL %s, want up to 1m", ttl)
	}
	if n, _ := b.store.CountOwed(b.ctx, store.OwedImport); n != 1 {
		t.Errorf("owed imports: %d, want 1", n)
	}
	if err := b.store.ClearImportWait(b.ctx, "sub_a", "au1", "1001"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.ImportWaitOf(b.ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after clear: %v, want ErrNotFound", err)
	}
	if n, _ := b.store.CountOwed(b.ctx, store.OwedImport); n != 0 {
		t.Errorf("owed imports after clear: %d", n)
	}
	bad := w
	bad.ClinikoPatientID = "1 OR 1"
	if err := b.store.AwaitImport(b.ctx, bad, time.Minute); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad id: %v, want ErrInvalid", err)
	}
}

// TestClaimPeriod: 100 simultaneous claims of one period, one winner.
func TestClaimPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	period := b.clock.Now().Truncate(time.Minute)
	wins := make(chan bool, 100)
	for range 100 {
		go func() {
			ok, err := b.store.ClaimPeriod(b.ctx, "reconcile", period, time.Minute)
			if err != nil {
				t.Error(err)
			}
			wins <- ok
		}()
	}
	n := 0
	for range 100 {
		if <-wins {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d claims won, want 1", n)
	}
	if ok, _ := b.store.ClaimPeriod(b.ctx, "reconcile", period.Add(time.Minute), time.Minute); !ok {
		t.Error("the next period could not be claimed")
	}
}
