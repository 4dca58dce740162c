package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

func TestImportPatient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	owner := b.practitioner(t, sub.ID, "a@example.com")
	colleague := b.practitioner(t, sub.ID, "b@example.com")
	in := store.Patient{FirstName: "Zoë", LastName: "O'Brien", Email: "z@example.org", Mobile: "0400",
		Gender: "female", YearOfBirth: 1985, BirthYearStatus: pmsbridge.BirthYearOK, BirthYearSource: pmsbridge.BirthYearFromCliniko}
	got, created, err := b.store.ImportPatient(b.ctx, sub.ID, "au1", "836447129235883061", owner.ID, in)
	if err != nil || !created {
		t.Fatalf("ImportPatient = created %v, %v; want created", created, err)
	}
	now := b.clock.Now()
	want := in
	want.ID, want.SubscriptionID, want.OwnerID, want.SharedWith = got.ID, sub.ID, owner.ID, []string{}
	want.CreatedAt, want.UpdatedAt = now, now
	want.Link = &store.Link{SubscriptionID: sub.ID, Shard: "au1", ClinikoPatientID: "836447129235883061",
		PatientID: got.ID, LastSyncedAt: now}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ImportPatient (-want +got):\n%s", diff)
	}
	stored, err := b.store.GetPatient(b.ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("GetPatient (-want +got):\n%s", diff)
	}
	id, err := b.store.FindLink(b.ctx, sub.ID, "au1", "836447129235883061")
	if err != nil || id != got.ID {
		t.Errorf("FindLink = %q, %v; want %q", id, err, got.ID)
	}
	// A colleague importing the same Cliniko patient gets the same one, and
	// does not become its owner.
	again, created, err := b.store.ImportPatient(b.ctx, sub.ID, "au1", "836447129235883061", colleague.ID, store.Patient{LastName: "Else"})
	if err != nil || created {
		t.Fatalf("second ImportPatient = created %v, %v; want existing", created, err)
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Errorf("second ImportPatient (-want +got):\n%s", diff)
	}
	for _, c := range []struct{ sub, shard, id string }{
		{sub.ID, "au2", "836447129235883061"}, {sub.ID, "au1", "1"}, {"sub_other", "au1", "836447129235883061"}, {sub.ID, "au1", "bad id!"},
	} {
		if _, err := b.store.FindLink(b.ctx, c.sub, c.shard, c.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FindLink(%v): err = %v, want ErrNotFound", c, err)
		}
	}
	links, err := b.store.LinkedPatientsOf(b.ctx, sub.ID, "au1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"836447129235883061": got.ID}, links); diff != "" {
		t.Errorf("LinkedPatientsOf (-want +got):\n%s", diff)
	}
}

func TestImportPatientRejects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub, other := b.subscription(t, "Clinic"), b.subscription(t, "Other")
	owner := b.practitioner(t, sub.ID, "a@example.com")
	stranger := b.practitioner(t, other.ID, "s@example.com")
	inactive := b.practitioner(t, sub.ID, "i@example.com")
	if err := b.store.Deactivate(b.ctx, inactive.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc                    string
		subID, shard, clinikoID string
		ownerID                 string
		p                       store.Patient
	}{
		{desc: "owner of another subscription", subID: sub.ID, shard: "au1", clinikoID: "1", ownerID: stranger.ID},
		{desc: "inactive owner", subID: sub.ID, shard: "au1", clinikoID: "1", ownerID: inactive.ID},
		{desc: "unknown owner", subID: sub.ID, shard: "au1", clinikoID: "1", ownerID: "prac_nope"},
		{desc: "bad cliniko id", subID: sub.ID, shard: "au1", clinikoID: "1:2", ownerID: owner.ID},
		{desc: "empty shard", subID: sub.ID, shard: "", clinikoID: "1", ownerID: owner.ID},
		{desc: "bad birth year status", subID: sub.ID, shard: "au1", clinikoID: "1", ownerID: owner.ID,
			p: store.Patient{BirthYearStatus: "weird"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, _, err := b.store.ImportPatient(b.ctx, tc.subID, tc.shard, tc.clinikoID, tc.ownerID, tc.p)
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("ImportPatient: err = %v, want ErrInvalid", err)
			}
		})
	}
	if n := len(b.rdb.Keys(b.ctx, "pmsb:pat:*").Val()); n != 0 {
		t.Errorf("%d patient keys after rejected imports, want 0", n)
	}
}

func TestImportPatientConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	var pracs []store.Practitioner
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"} {
		pracs = append(pracs, b.practitioner(t, sub.ID, e))
	}
	const n = 20
	ids := make([]string, n)
	owners := make([]string, n)
	createdCount := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			pr := pracs[i%len(pracs)]
			p, created, err := b.store.ImportPatient(b.ctx, sub.ID, "au1", "42", pr.ID, store.Patient{LastName: "Race"})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], owners[i] = p.ID, p.OwnerID
			if created {
				mu.Lock()
				createdCount++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if createdCount != 1 {
		t.Errorf("%d callers created the patient, want 1", createdCount)
	}
	for i := range n {
		if ids[i] != ids[0] || owners[i] != owners[0] {
			t.Errorf("caller %d got %s owned by %s; caller 0 got %s owned by %s", i, ids[i], owners[i], ids[0], owners[0])
		}
	}
	if keys := b.rdb.Keys(b.ctx, "pmsb:pat:*").Val(); len(keys) != 1 {
		t.Errorf("patient keys = %v, want one", keys)
	}
	links, _ := b.store.LinkedPatientsOf(b.ctx, sub.ID, "au1")
	if diff := cmp.Diff(map[string]string{"42": ids[0]}, links); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
}

func TestLinksArePerSubscription(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub1, sub2 := b.subscription(t, "One"), b.subscription(t, "Two")
	p1 := b.patient(t, b.practitioner(t, sub1.ID, "a@one.example"), "777", "Same")
	p2 := b.patient(t, b.practitioner(t, sub2.ID, "a@two.example"), "777", "Same")
	if p1.ID == p2.ID {
		t.Fatal("two subscriptions share one patient")
	}
	for _, c := range []struct{ sub, want string }{{sub1.ID, p1.ID}, {sub2.ID, p2.ID}} {
		if got, err := b.store.FindLink(b.ctx, c.sub, "au1", "777"); err != nil || got != c.want {
			t.Errorf("FindLink(%s) = %q, %v; want %q", c.sub, got, err, c.want)
		}
	}
}

func TestUpdatePatient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	owner := b.practitioner(t, sub.ID, "a@example.com")
	p := b.patient(t, owner, "1", "Old")
	b.clock.Advance(time.Hour)
	got, err := b.store.UpdatePatient(b.ctx, p.ID, func(x *store.Patient) error {
		x.LastName = "New"
		x.YearOfBirth, x.BirthYearSource = 1990, pmsbridge.BirthYearManual
		x.OwnerID, x.SubscriptionID, x.Link, x.SharedWith = "prac_evil", "sub_evil", nil, []string{"prac_evil"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := p
	want.LastName, want.YearOfBirth, want.BirthYearSource = "New", 1990, pmsbridge.BirthYearManual
	want.UpdatedAt = b.clock.Now()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UpdatePatient (-want +got):\n%s", diff)
	}
	stored, _ := b.store.GetPatient(b.ctx, p.ID)
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	boom := errors.New("boom")
	if _, err := b.store.UpdatePatient(b.ctx, p.ID, func(*store.Patient) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("fn error: err = %v, want boom", err)
	}
	if _, err := b.store.UpdatePatient(b.ctx, p.ID, func(x *store.Patient) error { x.BirthYearStatus = "nope"; return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad status: err = %v, want ErrInvalid", err)
	}
	if _, err := b.store.UpdatePatient(b.ctx, "pat_missing", func(*store.Patient) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing: err = %v, want ErrNotFound", err)
	}
}

func TestUpdatePatientConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	p := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "Count")
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := b.store.UpdatePatient(b.ctx, p.ID, func(x *store.Patient) error {
				x.ClinikoYear++
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := b.store.GetPatient(b.ctx, p.ID)
	if got.ClinikoYear != 10 {
		t.Errorf("after 10 concurrent increments: %d", got.ClinikoYear)
	}
}

func TestMarkLink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	p := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "L")
	at := b.clock.Now().Add(time.Hour)
	if err := b.store.MarkLinkSynced(b.ctx, p.ID, at); err != nil {
		t.Fatal(err)
	}
	if err := b.store.MarkLinkArchived(b.ctx, p.ID, true); err != nil {
		t.Fatal(err)
	}
	got, _ := b.store.GetPatient(b.ctx, p.ID)
	want := *p.Link
	want.LastSyncedAt, want.ArchivedInCliniko = at, true
	if diff := cmp.Diff(&want, got.Link); diff != "" {
		t.Errorf("link (-want +got):\n%s", diff)
	}
	if err := b.store.MarkLinkSynced(b.ctx, "pat_missing", at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing: err = %v, want ErrNotFound", err)
	}
}

func TestListPatientsVisibleTo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub, other := b.subscription(t, "Clinic"), b.subscription(t, "Other")
	me := b.practitioner(t, sub.ID, "me@example.com")
	grouped := b.practitioner(t, sub.ID, "grouped@example.com")
	groupedGone := b.practitioner(t, sub.ID, "gone@example.com")
	outsider := b.practitioner(t, sub.ID, "outsider@example.com")
	stranger := b.practitioner(t, other.ID, "stranger@example.com")
	if _, err := b.store.SetSharing(b.ctx, sub.ID, []string{me.ID, grouped.ID, groupedGone.ID}, nil); err != nil {
		t.Fatal(err)
	}
	mine := b.patient(t, me, "1", "zeta")
	viaGroup := b.patient(t, grouped, "2", "Alpha")
	b.patient(t, groupedGone, "3", "Gone")
	b.patient(t, outsider, "4", "Hidden")
	sharedWithMe := b.patient(t, outsider, "5", "mu")
	b.patient(t, stranger, "6", "Stranger")
	if err := b.store.Share(b.ctx, sharedWithMe.ID, me.ID); err != nil {
		t.Fatal(err)
	}
	sharedWithMe.SharedWith = []string{me.ID}
	if err := b.store.Deactivate(b.ctx, groupedGone.ID); err != nil {
		t.Fatal(err)
	}
	got, err := b.store.ListPatientsVisibleTo(b.ctx, me)
	if err != nil {
		t.Fatal(err)
	}
	ignoreUpdated := cmpopts.IgnoreFields(store.Patient{}, "UpdatedAt")
	if diff := cmp.Diff([]store.Patient{viaGroup, sharedWithMe, mine}, got, ignoreUpdated); diff != "" {
		t.Errorf("visible to me (-want +got):\n%s", diff)
	}
	if err := b.store.Deactivate(b.ctx, me.ID); err != nil {
		t.Fatal(err)
	}
	got, err = b.store.ListPatientsVisibleTo(b.ctx, me)
	if err != nil || len(got) != 0 {
		t.Errorf("visible to an inactive practitioner: %d patients, %v; want none", len(got), err)
	}
}

// faultHook makes Redis calls fail on the client it is added to: a command
// named after (run first, its reply then lost) or a pipeline holding a
// command named before (not run at all), once each.
type faultHook struct {
	mu            sync.Mutex
	after, before string
}

var errLostReply = errors.New("i/o timeout (injected)")

func (h *faultHook) take(name *string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	hit := *name != ""
	*name = ""
	return hit
}

func (h *faultHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *faultHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		lose := h.after != "" && cmd.Name() == h.after
		h.mu.Unlock()
		if err := next(ctx, cmd); err != nil || !lose || !h.take(&h.after) {
			return err
		}
		cmd.SetErr(errLostReply)
		return errLostReply
	}
}

func (h *faultHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		fail := h.before != "" && slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return c.Name() == h.before })
		h.mu.Unlock()
		if fail && h.take(&h.before) {
			for _, c := range cmds {
				c.SetErr(errLostReply)
			}
			return errLostReply
		}
		return next(ctx, cmds)
	}
}

// TestImportPatientRedisFaults: a Redis error in the middle of an import
// never leaves a link to a patient that does not exist (the link's write
// may have happened even though its reply was lost), nor a linked patient
// missing from its owner's list and its subscription's index (which key
// rotation walks). A retry of the import then finds a complete patient.
func TestImportPatientRedisFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc string
		hook *faultHook
	}{
		{"link written, reply lost", &faultHook{after: "hsetnx"}},
		{"index write fails", &faultHook{before: "sadd"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b := setup(t)
			sub := b.subscription(t, "Clinic")
			owner := b.practitioner(t, sub.ID, "a@example.com")
			faulty := redis.NewClient(b.rdb.Options())
			t.Cleanup(func() { faulty.Close() })
			faulty.AddHook(tc.hook)
			st, err := store.New(faulty, b.opts)
			if err != nil {
				t.Fatal(err)
			}
			in := store.Patient{FirstName: "Zoë", LastName: "O'Brien", BirthYearStatus: pmsbridge.BirthYearMissing, BirthYearSource: pmsbridge.BirthYearFromCliniko}
			got, _, err := st.ImportPatient(b.ctx, sub.ID, "au1", "1001", owner.ID, in)
			if err != nil {
				// The import job retries.
				if got, _, err = st.ImportPatient(b.ctx, sub.ID, "au1", "1001", owner.ID, in); err != nil {
					t.Fatalf("retried ImportPatient: %v", err)
				}
			}
			id, err := b.store.FindLink(b.ctx, sub.ID, "au1", "1001")
			if err != nil || id != got.ID {
				t.Fatalf("FindLink = %q, %v; want %q", id, err, got.ID)
			}
			if _, err := b.store.GetPatient(b.ctx, id); err != nil {
				t.Errorf("the link names patient %s: %v", id, err)
			}
			list, err := b.store.ListPatientsVisibleTo(b.ctx, owner)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].ID != id {
				t.Errorf("owner's list = %d patients, want the imported one", len(list))
			}
			if ids := b.rdb.SMembers(b.ctx, "pmsb:sub:"+sub.ID+":patients").Val(); !slices.Equal(ids, []string{id}) {
				t.Errorf("subscription's patients = %v, want [%s]", ids, id)
			}
		})
	}
}
