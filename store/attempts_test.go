package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
)

// TestAccessLog: tries at opening a programme go to the patient's access
// log, not to the history support reads; locked tries are listed once per
// code and client per window and all counted; unknown codes are not
// written anywhere.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *store.Options) {
		o.AccessMaxFailures = 2
		o.AccessMaxIPFailures = 1000
		o.AccessWindow = time.Hour
	})
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	pat := b.patient(t, pr, "1", "P") // born 1985
	prg, _, err := b.store.CreateProgramme(b.ctx, programmeFor(pat, "T"))
	must(t, err)
	must(t, b.store.Audit(b.ctx, store.AuditEntry{PractitionerID: pr.ID, PatientID: pat.ID, Op: "cliniko.get_patient", Status: 200}))

	try := func(code string, year int, client string) error {
		t.Helper()
		_, att, err := b.store.OpenProgramme(b.ctx, code, year, client)
		must(t, b.store.RecordAttempt(b.ctx, att))
		return err
	}
	if err := try(prg.Code, 1985, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := try(prg.Code, 1990, "192.0.2.1"); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	for _, client := range []string{"192.0.2.1", "192.0.2.2"} {
		for range 50 {
			if err := try(prg.Code, 1985, client); !errors.Is(err, store.ErrLocked) {
				t.Fatal(err)
			}
		}
	}
	for range 5 {
		_ = try("zzzzzzzz", 1985, "192.0.2.3") // unknown code
	}
	for _, k := range []string{"pmsb:pat:" + pat.ID + ":access", "pmsb:pat:" + pat.ID + ":access:count"} {
		if ttl := b.rdb.PTTL(b.ctx, k).Val(); ttl <= 170*24*time.Hour || ttl > 180*24*time.Hour {
			t.Errorf("%s TTL = %s, want the default 180 days after the last try", k, ttl)
		}
	}
	log, counts, err := b.store.AccessAttemptsOf(b.ctx, pat.ID, 0)
	must(t, err)
	want := []string{store.AccessLocked, store.AccessLocked, store.AccessFailed, store.AccessFailed, store.AccessOpened}
	if diff := cmp.Diff(want, ops(log)); diff != "" {
		t.Errorf("access log (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{store.AccessOpened: 1, store.AccessFailed: 2, store.AccessLocked: 100}, counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	history, err := b.store.AuditOf(b.ctx, pat.ID, 0)
	must(t, err)
	if diff := cmp.Diff([]string{"cliniko.get_patient"}, ops(history)); diff != "" {
		t.Errorf("support's history (-want +got):\n%s", diff)
	}
	// A new window by the store's clock lists the next locked try again
	// (the lock itself has ended by then: two fresh failures renew it).
	b.clock.Advance(time.Hour)
	for range 2 {
		_ = try(prg.Code, 1990, "192.0.2.1")
	}
	if err := try(prg.Code, 1985, "192.0.2.1"); !errors.Is(err, store.ErrLocked) {
		t.Fatal(err)
	}
	log, _, err = b.store.AccessAttemptsOf(b.ctx, pat.ID, 1)
	must(t, err)
	if diff := cmp.Diff([]string{store.AccessLocked}, ops(log)); diff != "" || !log[0].At.Equal(b.clock.Now()) {
		t.Errorf("newest entry after an hour (-want +got):\n%s (at %v)", diff, log[0].At)
	}
}

func ops(es []store.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Op)
	}
	return out
}
