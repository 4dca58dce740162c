package store_test

import (
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

var codePattern = regexp.MustCompile(`^[a-z]{8}$`)

func programmeFor(p store.Patient, title string) pmsbridge.Programme {
	return pmsbridge.Programme{
		PatientID: p.ID, PractitionerID: p.OwnerID, Title: title, StartsOn: "2026-11-22",
		Exercises: []pmsbridge.Exercise{{Name: "Straight leg raise", Sets: 3, Reps: 10}},
	}
}

func TestCreateProgrammeVersions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P")

	v1, created, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "Week 1"))
	if err != nil || !created {
		t.Fatalf("CreateProgramme = created %v, %v", created, err)
	}
	if !codePattern.MatchString(v1.Code) || v1.Version != 1 || len(v1.ID) < 5 || v1.ID[:4] != "prg_" {
		t.Errorf("new programme: id %q version %d code %q", v1.ID, v1.Version, v1.Code)
	}
	b.clock.Advance(time.Hour)
	next := programmeFor(pat, "Week 2")
	next.ID, next.Version, next.Code = v1.ID, 2, "zzzzzzzz"
	v2, created, err := b.store.CreateProgramme(b.ctx, next)
	if err != nil || !created {
		t.Fatalf("version 2 = created %v, %v", created, err)
	}
	if v2.Code != v1.Code || v2.Version != 2 {
		t.Errorf("version 2: code %q version %d; want code %q", v2.Code, v2.Version, v1.Code)
	}

	tests := []struct {
		desc        string
		version     int
		title       string
		wantCreated bool
		wantVersion int
		wantTitle   string
		wantErr     error
	}{
		{desc: "same version again is idempotent", version: 2, title: "Changed", wantVersion: 2, wantTitle: "Week 2"},
		{desc: "older version again", version: 1, title: "Changed", wantVersion: 1, wantTitle: "Week 1"},
		{desc: "gap", version: 4, title: "Gap", wantErr: store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			in := programmeFor(pat, tc.title)
			in.ID, in.Version = v1.ID, tc.version
			got, created, err := b.store.CreateProgramme(b.ctx, in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if created != tc.wantCreated || got.Version != tc.wantVersion || got.Title != tc.wantTitle || got.Code != v1.Code {
				t.Errorf("got created %v version %d title %q code %q", created, got.Version, got.Title, got.Code)
			}
		})
	}

	// Version 0 means "the next one".
	in := programmeFor(pat, "Week 3")
	in.ID = v1.ID
	v3, created, err := b.store.CreateProgramme(b.ctx, in)
	if err != nil || !created || v3.Version != 3 || v3.Code != v1.Code {
		t.Fatalf("next version = %d created %v code %q, %v", v3.Version, created, v3.Code, err)
	}
	for _, v := range []pmsbridge.Programme{v1, v2, v3} {
		got, err := b.store.GetProgramme(b.ctx, v.ID, v.Version)
		must(t, err)
		if diff := cmp.Diff(v, got); diff != "" {
			t.Errorf("GetProgramme v%d (-want +got):\n%s", v.Version, diff)
		}
	}
	latest, err := b.store.LatestByCode(b.ctx, v1.Code)
	must(t, err)
	if diff := cmp.Diff(v3, latest); diff != "" {
		t.Errorf("LatestByCode (-want +got):\n%s", diff)
	}
	if _, err := b.store.GetProgramme(b.ctx, v1.ID, 9); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetProgramme(v9): err = %v, want ErrNotFound", err)
	}
	for _, code := range []string{"abcdefgh", "ABCDEFGH", "short", ""} {
		if code == v1.Code {
			continue
		}
		if _, err := b.store.LatestByCode(b.ctx, code); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LatestByCode(%q): err = %v, want ErrNotFound", code, err)
		}
	}

	// A second programme, newer: listed first; versions highest first.
	b.clock.Advance(time.Hour)
	other, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "Other"))
	must(t, err)
	list, err := b.store.ListProgrammes(b.ctx, pat.ID)
	must(t, err)
	if diff := cmp.Diff([]pmsbridge.Programme{other, v3, v2, v1}, list); diff != "" {
		t.Errorf("ListProgrammes (-want +got):\n%s", diff)
	}
}

func TestCreateProgrammeWithGivenID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	owner := b.practitioner(t, sub.ID, "a@example.com")
	pat := b.patient(t, owner, "1", "P")
	otherPat := b.patient(t, owner, "2", "Q")
	tests := []struct {
		desc    string
		id      string
		version int
		patient string
		wantErr error
	}{
		{desc: "first version of a webhook id", id: "prg_123", version: 1, patient: pat.ID},
		{desc: "webhook id starting at 2", id: "prg_456", version: 2, patient: pat.ID, wantErr: store.ErrInvalid},
		{desc: "bad id", id: "prg 1:2", version: 1, patient: pat.ID, wantErr: store.ErrInvalid},
		{desc: "unknown patient", id: "prg_789", version: 1, patient: "pat_nope", wantErr: store.ErrInvalid},
		{desc: "negative version", id: "prg_790", version: -1, patient: pat.ID, wantErr: store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			in := programmeFor(pat, "T")
			in.ID, in.Version, in.PatientID = tc.id, tc.version, tc.patient
			got, created, err := b.store.CreateProgramme(b.ctx, in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (!created || got.ID != tc.id || !codePattern.MatchString(got.Code)) {
				t.Errorf("got id %q code %q created %v", got.ID, got.Code, created)
			}
		})
	}
	in := programmeFor(otherPat, "T")
	in.ID, in.Version = "prg_123", 2
	if _, _, err := b.store.CreateProgramme(b.ctx, in); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("version for another patient: err = %v, want ErrInvalid", err)
	}
	// Rejected attempts leave no codes behind.
	if n := len(b.rdb.Keys(b.ctx, "pmsb:code:*").Val()); n != 1 {
		t.Errorf("%d codes reserved, want 1", n)
	}
}

func TestCreateProgrammeConcurrentFirstVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]bool{}
	created := 0
	for range 10 {
		wg.Go(func() {
			in := programmeFor(pat, "T")
			in.ID, in.Version = "prg_webhook", 1
			got, c, err := b.store.CreateProgramme(b.ctx, in)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			codes[got.Code] = true
			if c {
				created++
			}
		})
	}
	wg.Wait()
	if created != 1 || len(codes) != 1 {
		t.Errorf("created %d times with %d codes; want 1 and 1", created, len(codes))
	}
	if n := len(b.rdb.Keys(b.ctx, "pmsb:code:*").Val()); n != 1 {
		t.Errorf("%d codes reserved, want 1", n)
	}
}

func TestProgrammeCodesUnique(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P")
	seen := map[string]bool{}
	for i := range 1000 {
		p, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
		if err != nil {
			t.Fatal(err)
		}
		if !codePattern.MatchString(p.Code) {
			t.Fatalf("programme %d: code %q", i, p.Code)
		}
		if seen[p.Code] {
			t.Fatalf("programme %d: code %q used twice", i, p.Code)
		}
		seen[p.Code] = true
	}
}

func TestProgrammeCodeIndexCollision(t *testing.T) {
	t.Parallel()
	// Codes are reserved with SETNX, so a taken code is never overwritten.
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P")
	p, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
	must(t, err)
	for range 50 {
		_, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
		must(t, err)
	}
	if got := b.rdb.Get(b.ctx, "pmsb:code:"+b.keys.MAC("code", p.Code)).Val(); got != p.ID {
		t.Errorf("code index of the first programme = %q, want %q", got, p.ID)
	}
	if n := b.rdb.Exists(b.ctx, "pmsb:code:"+p.Code).Val(); n != 0 {
		t.Error("the code index is keyed by the code in clear")
	}
}

func TestPDFState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.store.PDFStateOf(b.ctx, "prg_1", 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("before any: err = %v, want ErrNotFound", err)
	}
	st := store.PDFState{State: pmsbridge.PDFFailed, Cause: pmsbridge.CauseClinikoForbidden, Reason: "role may not upload"}
	must(t, b.store.SetPDFState(b.ctx, "prg_1", 1, st))
	must(t, b.store.SetPDFState(b.ctx, "prg_1", 2, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: "99"}))
	got, err := b.store.PDFStateOf(b.ctx, "prg_1", 1)
	must(t, err)
	st.UpdatedAt = b.clock.Now()
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("PDFStateOf (-want +got):\n%s", diff)
	}
	all, err := b.store.PDFStates(b.ctx, "prg_1")
	must(t, err)
	if len(all) != 2 || all[2].AttachmentID != "99" {
		t.Errorf("PDFStates = %+v", all)
	}
	if err := b.store.SetPDFState(b.ctx, "prg_1", 1, store.PDFState{State: "done"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown state: err = %v, want ErrInvalid", err)
	}
}

// TestPDFStateUploadedStays: once a version is uploaded, a later failure
// (a slower attempt archived at its retry limit) or a reset to pending (a
// replay) must not hide the attachment that exists in Cliniko.
func TestPDFStateUploadedStays(t *testing.T) {
	t.Parallel()
	b := setup(t)
	up := store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: "42"}
	must(t, b.store.SetPDFState(b.ctx, "prg_1", 1, up))
	for _, late := range []store.PDFState{
		{State: pmsbridge.PDFFailed, Cause: pmsbridge.CauseClinikoRateLimited, Reason: "another worker is uploading"},
		{State: pmsbridge.PDFPending},
		{State: pmsbridge.PDFNotLinked, Cause: pmsbridge.CauseNotLinked},
	} {
		must(t, b.store.SetPDFState(b.ctx, "prg_1", 1, late))
		got, err := b.store.PDFStateOf(b.ctx, "prg_1", 1)
		must(t, err)
		if got.State != pmsbridge.PDFUploaded || got.AttachmentID != "42" {
			t.Errorf("after %s: state %+v, want uploaded with attachment 42", late.State, got)
		}
	}
	// A failed version can still become uploaded.
	must(t, b.store.SetPDFState(b.ctx, "prg_1", 2, store.PDFState{State: pmsbridge.PDFFailed, Cause: pmsbridge.CauseClinikoUnavailable}))
	must(t, b.store.SetPDFState(b.ctx, "prg_1", 2, store.PDFState{State: pmsbridge.PDFUploaded, AttachmentID: "43"}))
	if got, _ := b.store.PDFStateOf(b.ctx, "prg_1", 2); got.State != pmsbridge.PDFUploaded || got.AttachmentID != "43" {
		t.Errorf("failed then uploaded: state %+v", got)
	}
}

func TestClaimEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	for range n {
		wg.Go(func() {
			first, err := b.store.ClaimEvent(b.ctx, "evt_8f2c", 0)
			if err != nil {
				t.Error(err)
			}
			if first {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firsts != 1 {
		t.Errorf("%d first claims, want 1", firsts)
	}
	if ttl := b.rdb.TTL(b.ctx, "pmsb:evt:evt_8f2c").Val(); ttl < 29*24*time.Hour || ttl > 30*24*time.Hour {
		t.Errorf("claim TTL = %v, want about 30 days", ttl)
	}
	must(t, b.store.ReleaseEvent(b.ctx, "evt_8f2c"))
	if first, err := b.store.ClaimEvent(b.ctx, "evt_8f2c", time.Hour); err != nil || !first {
		t.Errorf("claim after release = %v, %v; want first", first, err)
	}
	if _, err := b.store.ClaimEvent(b.ctx, "", 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty id: err = %v, want ErrInvalid", err)
	}
}

// TestConfirmEvent: a claim is held briefly until confirmed; an
// unconfirmed claim (its handler died) lets a redelivery in again.
func TestConfirmEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if first, err := b.store.ClaimEvent(b.ctx, "evt_a", time.Minute); err != nil || !first {
		t.Fatalf("claim = %v, %v", first, err)
	}
	must(t, b.store.ConfirmEvent(b.ctx, "evt_a", 0))
	if ttl := b.rdb.TTL(b.ctx, "pmsb:evt:evt_a").Val(); ttl < 29*24*time.Hour {
		t.Errorf("confirmed claim TTL = %v, want about 30 days", ttl)
	}
	if first, _ := b.store.ClaimEvent(b.ctx, "evt_a", time.Minute); first {
		t.Error("a confirmed event was claimed again")
	}
	// An unconfirmed claim runs out.
	if first, err := b.store.ClaimEvent(b.ctx, "evt_b", time.Minute); err != nil || !first {
		t.Fatalf("claim = %v, %v", first, err)
	}
	must(t, b.rdb.PExpire(b.ctx, "pmsb:evt:evt_b", time.Millisecond).Err())
	time.Sleep(20 * time.Millisecond)
	if first, err := b.store.ClaimEvent(b.ctx, "evt_b", time.Minute); err != nil || !first {
		t.Errorf("claim after an unconfirmed claim ran out = %v, %v; want first", first, err)
	}
	must(t, b.rdb.Del(b.ctx, "pmsb:evt:evt_b").Err())
	if err := b.store.ConfirmEvent(b.ctx, "evt_b", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("confirm without a claim: err = %v, want ErrNotFound", err)
	}
}

func TestOpenProgramme(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.AccessMaxFailures = 5; o.AccessMaxIPFailures = 8 })
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P") // born 1985
	prg, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
	must(t, err)
	other, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "U"))
	must(t, err)

	got, _, err := b.store.OpenProgramme(b.ctx, " "+prg.Code+" ", 1985, "203.0.113.1")
	must(t, err)
	if got.ID != prg.ID {
		t.Errorf("opened %s, want %s", got.ID, prg.ID)
	}
	start := b.clock.Now()
	for i := range 5 {
		if _, _, err := b.store.OpenProgramme(b.ctx, prg.Code, 1990, "203.0.113.1"); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("wrong year %d: err = %v, want ErrBadCredentials", i+1, err)
		}
		b.clock.Advance(time.Minute)
	}
	_, _, err = b.store.OpenProgramme(b.ctx, prg.Code, 1985, "198.51.100.1")
	if got, want := lockedUntil(t, err), start.Add(time.Hour); !got.Equal(want) {
		t.Errorf("code locked until %v, want %v", got, want)
	}
	// Other codes still open from that address (5 of its 8 failures used).
	if _, _, err := b.store.OpenProgramme(b.ctx, other.Code, 1985, "203.0.113.1"); err != nil {
		t.Errorf("other code: %v", err)
	}
	for range 3 {
		_, _, _ = b.store.OpenProgramme(b.ctx, "qqqqqqqq", 1985, "203.0.113.1")
	}
	if _, _, err := b.store.OpenProgramme(b.ctx, other.Code, 1985, "203.0.113.1"); !errors.Is(err, store.ErrLocked) {
		t.Errorf("address after 8 failures: err = %v, want ErrLocked", err)
	}
	b.clock.Advance(time.Hour)
	if _, _, err := b.store.OpenProgramme(b.ctx, prg.Code, 1985, "203.0.113.1"); err != nil {
		t.Errorf("after an hour: %v", err)
	}
}
