package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
)

func TestClinikoKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	a := b.practitioner(t, sub.ID, "a@example.com")
	c := b.practitioner(t, sub.ID, "c@example.com")
	if _, _, err := b.store.ClinikoKey(b.ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("before saving: err = %v, want ErrNotFound", err)
	}
	if _, ok, err := b.store.ClinikoUserOf(b.ctx, a.ID); ok || err != nil {
		t.Errorf("ClinikoUserOf before saving = %v, %v", ok, err)
	}
	u := store.ClinikoUser{ID: "1", Name: "Ann", Email: "ann@clinic.example", Role: "Practitioner", Shard: "au1"}
	must(t, b.store.SetClinikoKey(b.ctx, a.ID, "key-au1", u))
	must(t, b.store.SetClinikoKey(b.ctx, c.ID, "key-uk1", store.ClinikoUser{ID: "2", Shard: "uk1"}))
	key, gotU, err := b.store.ClinikoKey(b.ctx, a.ID)
	must(t, err)
	if key != "key-au1" {
		t.Errorf("ClinikoKey = %q", key)
	}
	if diff := cmp.Diff(u, gotU); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	gotU, ok, err := b.store.ClinikoUserOf(b.ctx, a.ID)
	if err != nil || !ok {
		t.Fatalf("ClinikoUserOf = %v, %v", ok, err)
	}
	if diff := cmp.Diff(u, gotU); diff != "" {
		t.Errorf("ClinikoUserOf (-want +got):\n%s", diff)
	}
	ids, err := b.store.PractitionersWithKeys(b.ctx)
	must(t, err)
	if diff := cmp.Diff(sortedList(a.ID, c.ID), ids); diff != "" {
		t.Errorf("PractitionersWithKeys (-want +got):\n%s", diff)
	}
	must(t, b.store.DeleteClinikoKey(b.ctx, a.ID))
	if _, _, err := b.store.ClinikoKey(b.ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	ids, _ = b.store.PractitionersWithKeys(b.ctx)
	if diff := cmp.Diff([]string{c.ID}, ids); diff != "" {
		t.Errorf("PractitionersWithKeys after delete (-want +got):\n%s", diff)
	}
	if err := b.store.SetClinikoKey(b.ctx, "prac_nope", "k", store.ClinikoUser{Shard: "au1"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown practitioner: err = %v, want ErrNotFound", err)
	}
	if err := b.store.SetClinikoKey(b.ctx, a.ID, "", store.ClinikoUser{Shard: "au1"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty key: err = %v, want ErrInvalid", err)
	}
	// A ciphertext moved to another practitioner does not decrypt.
	enc := b.rdb.HGet(b.ctx, "pmsb:prac:"+c.ID+":cliniko", "key").Val()
	must(t, b.rdb.HSet(b.ctx, "pmsb:prac:"+a.ID+":cliniko", "key", enc, "user", "{}").Err())
	if _, _, err := b.store.ClinikoKey(b.ctx, a.ID); err == nil {
		t.Error("a key copied from another practitioner decrypted")
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.AuditCap = 5; o.PatientAuditCap = 3 })
	for i := range 8 {
		pat := "pat_a"
		if i%2 == 1 {
			pat = "pat_b"
		}
		must(t, b.store.Audit(b.ctx, store.AuditEntry{PractitionerID: "prac_1", PatientID: pat,
			Op: "cliniko.get_patient", Status: 200 + i, Detail: fmt.Sprint(i)}))
	}
	must(t, b.store.Audit(b.ctx, store.AuditEntry{PractitionerID: "prac_1", Op: "cliniko.get_user", Status: 401}))
	// A patient's log lasts PatientAuditTTL after its last entry; the
	// global log is capped only.
	if ttl := b.rdb.PTTL(b.ctx, "pmsb:pat:pat_a:audit").Val(); ttl <= 170*24*time.Hour || ttl > 180*24*time.Hour {
		t.Errorf("patient log TTL = %s, want the default 180 days", ttl)
	}
	if ttl := b.rdb.PTTL(b.ctx, "pmsb:audit").Val(); ttl != -1 {
		t.Errorf("global log TTL = %s, want none", ttl)
	}
	statuses := func(es []store.AuditEntry) []int {
		var out []int
		for _, e := range es {
			out = append(out, e.Status)
		}
		return out
	}
	tests := []struct {
		desc string
		get  func() ([]store.AuditEntry, error)
		want []int
	}{
		{desc: "recent, all kept", get: func() ([]store.AuditEntry, error) { return b.store.AuditRecent(b.ctx, 0) }, want: []int{401, 207, 206, 205, 204}},
		{desc: "recent, 2", get: func() ([]store.AuditEntry, error) { return b.store.AuditRecent(b.ctx, 2) }, want: []int{401, 207}},
		{desc: "patient a", get: func() ([]store.AuditEntry, error) { return b.store.AuditOf(b.ctx, "pat_a", 10) }, want: []int{206, 204, 202}},
		{desc: "patient b, 1", get: func() ([]store.AuditEntry, error) { return b.store.AuditOf(b.ctx, "pat_b", 1) }, want: []int{207}},
		{desc: "unknown patient", get: func() ([]store.AuditEntry, error) { return b.store.AuditOf(b.ctx, "pat_c", 10) }, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := tc.get()
			must(t, err)
			if diff := cmp.Diff(tc.want, statuses(got)); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			for _, e := range got {
				if !e.At.Equal(b.clock.Now()) {
					t.Errorf("At = %v, want the clock's time", e.At)
				}
			}
		})
	}
	if err := b.store.Audit(b.ctx, store.AuditEntry{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("no op: err = %v, want ErrInvalid", err)
	}
}

func TestSyncCursor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, ok, err := b.store.SyncCursor(b.ctx, "sub_1", "au1"); ok || err != nil {
		t.Errorf("before any = %v, %v", ok, err)
	}
	must(t, b.store.SetSyncCursor(b.ctx, "sub_1", "au1", b.clock.Now()))
	at, ok, err := b.store.SyncCursor(b.ctx, "sub_1", "au1")
	if err != nil || !ok || !at.Equal(b.clock.Now()) {
		t.Errorf("SyncCursor = %v, %v, %v", at, ok, err)
	}
}

func TestDefaultArgon2(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) { o.Argon2 = store.Argon2Params{} })
	sub := b.subscription(t, "Clinic")
	b.practitioner(t, sub.ID, "a@example.com")
	hash := b.rdb.Get(b.ctx, "pmsb:prac:"+b.practitionerByEmail(t, "a@example.com").ID).Val()
	if !regexpMatch(`"password_hash":"\$argon2id\$v=19\$m=19456,t=2,p=1\$`, hash) {
		t.Errorf("stored record does not hold a default argon2id hash")
	}
	if _, err := b.store.Authenticate(b.ctx, "a@example.com", testPassword, ""); err != nil {
		t.Errorf("Authenticate: %v", err)
	}
}

func TestPractitionerWithCliniko(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	a := b.practitioner(t, sub.ID, "a@example.com")
	p, _, ok, err := b.store.PractitionerWithCliniko(b.ctx, a.ID)
	if err != nil || ok || p.ID != a.ID || p.Email != "a@example.com" {
		t.Fatalf("without a key: %+v ok=%v err=%v", p, ok, err)
	}
	u := store.ClinikoUser{ID: "7", Name: "Ann", Role: "receptionist", Shard: "uk2"}
	must(t, b.store.SetClinikoKey(b.ctx, a.ID, "key-uk2", u))
	p, got, ok, err := b.store.PractitionerWithCliniko(b.ctx, a.ID)
	if err != nil || !ok || p.ID != a.ID {
		t.Fatalf("with a key: %+v ok=%v err=%v", p, ok, err)
	}
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	for _, id := range []string{"prac_nope", "not an id"} {
		if _, _, _, err := b.store.PractitionerWithCliniko(b.ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%q: err = %v, want ErrNotFound", id, err)
		}
	}
}
