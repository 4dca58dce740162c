package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
)

// world is a subscription with an owner, a reader and a third colleague,
// one patient of the owner, and another subscription with a practitioner.
// The owner's name has what JSON and HTML escape, and letters beyond ASCII,
// so that every way of reading it must give it back intact.
type world struct {
	owner, reader, third, stranger store.Practitioner
	patient                        store.Patient
}

func newWorld(t testing.TB, b *bundle) *world {
	t.Helper()
	sub, other := b.subscription(t, "Clinic"), b.subscription(t, "Other")
	w := &world{
		owner:    b.namedPractitioner(t, sub.ID, "owner@example.com", `Zoë O'Brien-Ng <"王"> & co`),
		reader:   b.practitioner(t, sub.ID, "reader@example.com"),
		third:    b.practitioner(t, sub.ID, "third@example.com"),
		stranger: b.practitioner(t, other.ID, "stranger@example.com"),
	}
	w.patient = b.patient(t, w.owner, "100", "Patient")
	return w
}

func (w *world) group(t *testing.T, b *bundle, ids ...string) {
	t.Helper()
	if _, err := b.store.SetSharing(b.ctx, w.owner.SubscriptionID, ids, nil); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sharingSituation is a case of design.md's sharing rules.
type sharingSituation struct {
	desc string
	// arrange changes the world and returns who tries to open the patient.
	arrange func(t *testing.T, b *bundle, w *world) store.Practitioner
	// want is the expected access; OwnerID "owner"/"third" stand for
	// the world's practitioners and are filled in (see wantFor).
	want store.Access
}

// wantFor fills in the owner of sc's expected access.
func (sc sharingSituation) wantFor(w *world) store.Access {
	want := sc.want
	switch want.OwnerID {
	case "owner":
		want.OwnerID, want.OwnerName = w.owner.ID, w.owner.Name
	case "third":
		want.OwnerID, want.OwnerName = w.third.ID, w.third.Name
	}
	return want
}

// sharingSituations is the table of sharing situations that CanOpen, the
// patient list and the click script (click_test.go) are all held to.
func sharingSituations() []sharingSituation {
	return []sharingSituation{
		{desc: "owner", want: store.Access{Allowed: true, Reason: store.AccessOwner, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner { return w.owner }},
		{desc: "colleague without sharing", want: store.Access{Reason: store.AccessDenied, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner { return w.reader }},
		{desc: "individual share", want: store.Access{Allowed: true, Reason: store.AccessShared, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				must(t, b.store.Share(b.ctx, w.patient.ID, w.reader.ID))
				return w.reader
			}},
		{desc: "individual share with an inactive owner", want: store.Access{Allowed: true, Reason: store.AccessShared, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				must(t, b.store.Share(b.ctx, w.patient.ID, w.reader.ID))
				must(t, b.store.Deactivate(b.ctx, w.owner.ID))
				return w.reader
			}},
		{desc: "group with active owner", want: store.Access{Allowed: true, Reason: store.AccessGroup, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				w.group(t, b, w.owner.ID, w.reader.ID)
				return w.reader
			}},
		{desc: "group with inactive owner", want: store.Access{Reason: store.AccessDenied, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				w.group(t, b, w.owner.ID, w.reader.ID)
				must(t, b.store.Deactivate(b.ctx, w.owner.ID))
				return w.reader
			}},
		{desc: "group without the owner", want: store.Access{Reason: store.AccessDenied, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				w.group(t, b, w.third.ID, w.reader.ID)
				return w.reader
			}},
		{desc: "group without the reader", want: store.Access{Reason: store.AccessDenied, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				w.group(t, b, w.owner.ID, w.third.ID)
				return w.reader
			}},
		{desc: "other subscription", want: store.Access{Reason: store.AccessDenied},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner { return w.stranger }},
		{desc: "inactive reader with a share", want: store.Access{Reason: store.AccessDenied, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				must(t, b.store.Share(b.ctx, w.patient.ID, w.reader.ID))
				w.group(t, b, w.owner.ID, w.reader.ID)
				must(t, b.store.Deactivate(b.ctx, w.reader.ID))
				return w.reader
			}},
		{desc: "inactive owner", want: store.Access{Reason: store.AccessDenied, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				must(t, b.store.Deactivate(b.ctx, w.owner.ID))
				return w.owner
			}},
		{desc: "old owner after transfer", want: store.Access{Reason: store.AccessDenied, OwnerID: "third"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				must(t, b.store.Transfer(b.ctx, w.patient.ID, w.third.ID))
				return w.owner
			}},
		{desc: "old owner after transfer within the group", want: store.Access{Allowed: true, Reason: store.AccessGroup, OwnerID: "third"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				w.group(t, b, w.owner.ID, w.third.ID)
				must(t, b.store.Transfer(b.ctx, w.patient.ID, w.third.ID))
				return w.owner
			}},
		{desc: "new owner after transfer", want: store.Access{Allowed: true, Reason: store.AccessOwner, OwnerID: "third"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				must(t, b.store.Share(b.ctx, w.patient.ID, w.third.ID))
				must(t, b.store.Transfer(b.ctx, w.patient.ID, w.third.ID))
				return w.third
			}},
		{desc: "after unshare", want: store.Access{Reason: store.AccessDenied, OwnerID: "owner"},
			arrange: func(t *testing.T, b *bundle, w *world) store.Practitioner {
				must(t, b.store.Share(b.ctx, w.patient.ID, w.reader.ID))
				must(t, b.store.Unshare(b.ctx, w.patient.ID, w.reader.ID))
				return w.reader
			}},
	}
}

func TestCanOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range sharingSituations() {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			w := newWorld(t, b)
			reader := tc.arrange(t, b, w)
			patient, err := b.store.GetPatient(b.ctx, w.patient.ID)
			must(t, err)
			got, err := b.store.CanOpen(b.ctx, reader, patient)
			must(t, err)
			want := tc.wantFor(w)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CanOpen (-want +got):\n%s", diff)
			}
			// The list agrees with CanOpen.
			list, err := b.store.ListPatientsVisibleTo(b.ctx, b.practitionerNow(t, reader.ID))
			must(t, err)
			if listed := len(list) == 1 && list[0].ID == patient.ID; listed != want.Allowed {
				t.Errorf("ListPatientsVisibleTo lists the patient: %v, CanOpen allows: %v", listed, want.Allowed)
			}
		})
	}
}

func TestShareAndTransferRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		act  func(b *bundle, w *world) error
	}{
		{desc: "share across subscriptions", act: func(b *bundle, w *world) error {
			return b.store.Share(b.ctx, w.patient.ID, w.stranger.ID)
		}},
		{desc: "transfer across subscriptions", act: func(b *bundle, w *world) error {
			return b.store.Transfer(b.ctx, w.patient.ID, w.stranger.ID)
		}},
		{desc: "share with an inactive colleague", act: func(b *bundle, w *world) error {
			if err := b.store.Deactivate(b.ctx, w.reader.ID); err != nil {
				return err
			}
			return b.store.Share(b.ctx, w.patient.ID, w.reader.ID)
		}},
		{desc: "transfer to an inactive colleague", act: func(b *bundle, w *world) error {
			if err := b.store.Deactivate(b.ctx, w.reader.ID); err != nil {
				return err
			}
			return b.store.Transfer(b.ctx, w.patient.ID, w.reader.ID)
		}},
		{desc: "share with the owner", act: func(b *bundle, w *world) error {
			return b.store.Share(b.ctx, w.patient.ID, w.owner.ID)
		}},
		{desc: "share with nobody", act: func(b *bundle, w *world) error {
			return b.store.Share(b.ctx, w.patient.ID, "prac_nobody")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			w := newWorld(t, b)
			if err := tc.act(b, w); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			got, err := b.store.GetPatient(b.ctx, w.patient.ID)
			must(t, err)
			if got.OwnerID != w.owner.ID || len(got.SharedWith) != 0 {
				t.Errorf("patient changed: owner %s, shared with %v", got.OwnerID, got.SharedWith)
			}
		})
	}
}

func TestSharedWith(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := newWorld(t, b)
	must(t, b.store.Share(b.ctx, w.patient.ID, w.third.ID))
	must(t, b.store.Share(b.ctx, w.patient.ID, w.reader.ID))
	must(t, b.store.Share(b.ctx, w.patient.ID, w.reader.ID))
	got, err := b.store.SharedWith(b.ctx, w.patient.ID)
	must(t, err)
	want := []string{w.reader.ID, w.third.ID}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SharedWith (-want +got):\n%s", diff)
	}
	must(t, b.store.Unshare(b.ctx, w.patient.ID, w.third.ID))
	got, err = b.store.SharedWith(b.ctx, w.patient.ID)
	must(t, err)
	if diff := cmp.Diff([]string{w.reader.ID}, got); diff != "" {
		t.Errorf("SharedWith after unshare (-want +got):\n%s", diff)
	}
	if _, err := b.store.SharedWith(b.ctx, "pat_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SharedWith(missing): err = %v, want ErrNotFound", err)
	}
}

func TestSharing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	b.clock.Advance(time.Second)
	other := b.subscription(t, "Other")
	a := b.practitioner(t, sub.ID, "a@example.com")
	c := b.practitioner(t, sub.ID, "c@example.com")
	s := b.practitioner(t, other.ID, "s@example.com")
	empty, err := b.store.GetSharing(b.ctx, sub.ID)
	must(t, err)
	if diff := cmp.Diff(store.Sharing{SubscriptionID: sub.ID, Patients: []string{}, Content: []string{}}, empty); diff != "" {
		t.Errorf("GetSharing before any (-want +got):\n%s", diff)
	}
	_, err = b.store.SetSharing(b.ctx, sub.ID, []string{a.ID, s.ID}, []string{"prac_ghost"})
	var ve *store.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("SetSharing with strangers: err = %v, want a ValidationError", err)
	}
	want := []string{"not practitioners of this subscription: " + sortedJoin("prac_ghost", s.ID)}
	if diff := cmp.Diff(want, ve.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	_, err = b.store.SetSharing(b.ctx, sub.ID, []string{c.ID, a.ID, a.ID}, []string{a.ID})
	must(t, err)
	got, err := b.store.GetSharing(b.ctx, sub.ID)
	must(t, err)
	wantSh := store.Sharing{SubscriptionID: sub.ID, Patients: sortedList(a.ID, c.ID), Content: []string{a.ID}}
	if diff := cmp.Diff(wantSh, got); diff != "" {
		t.Errorf("GetSharing (-want +got):\n%s", diff)
	}
	if _, err := b.store.GetSharing(b.ctx, "sub_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSharing(missing): err = %v, want ErrNotFound", err)
	}
	subs, err := b.store.ListSubscriptions(b.ctx)
	must(t, err)
	if diff := cmp.Diff([]store.Subscription{sub, other}, subs); diff != "" {
		t.Errorf("ListSubscriptions (-want +got):\n%s", diff)
	}
}

func sortedList(a, b string) []string {
	if a > b {
		return []string{b, a}
	}
	return []string{a, b}
}

func sortedJoin(a, b string) string {
	l := sortedList(a, b)
	return l[0] + ", " + l[1]
}
