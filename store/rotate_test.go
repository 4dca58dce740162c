package store_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// dumpDB is every key name and value of the test's database, as text.
func dumpDB(t *testing.T, b *bundle) string {
	t.Helper()
	var sb strings.Builder
	for _, k := range b.rdb.Keys(b.ctx, "*").Val() {
		sb.WriteString(k + "\n")
		switch b.rdb.Type(b.ctx, k).Val() {
		case "string":
			sb.WriteString(b.rdb.Get(b.ctx, k).Val())
		case "hash":
			fmt.Fprint(&sb, b.rdb.HGetAll(b.ctx, k).Val())
		case "list":
			fmt.Fprint(&sb, b.rdb.LRange(b.ctx, k, 0, -1).Val())
		case "set":
			fmt.Fprint(&sb, b.rdb.SMembers(b.ctx, k).Val())
		case "zset":
			fmt.Fprint(&sb, b.rdb.ZRangeWithScores(b.ctx, k, 0, -1).Val())
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// TestProgrammesEncryptedAndRotated: programme titles, notes, exercise
// texts and codes are not in Redis in clear, and the code index is keyed
// by a MAC; after a key rotation codes are still found (under the old
// key's MAC until Reencrypt moves them), Reencrypt seals programmes
// stored in clear by older versions, and once it has run the old key can
// go.
func TestProgrammesEncryptedAndRotated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pat := b.patient(t, b.practitioner(t, sub.ID, "a@example.com"), "1", "P") // born 1985
	in := programmeFor(pat, "Knee rehab after the fall")
	in.Notes = "Stop if the swelling comes back"
	in.Exercises[0].Instructions = "Lift the heel slowly off the bed"
	v1, _, err := b.store.CreateProgramme(b.ctx, in)
	must(t, err)
	dump := dumpDB(t, b)
	for _, secret := range []string{v1.Code, in.Title, in.Notes, in.Exercises[0].Instructions, "Straight leg raise"} {
		if strings.Contains(dump, secret) {
			t.Errorf("%q is in Redis in clear", secret)
		}
	}
	// A programme as an older version stored it: in clear, indexed by
	// its code.
	legacy := pmsbridge.Programme{ID: "prg_legacy", Version: 1, PatientID: pat.ID, PractitionerID: pat.OwnerID, Title: "Old shoulder plan",
		Code: "qwertyui", StartsOn: "2026-01-01", CreatedAt: b.clock.Now().UTC().Add(-time.Hour)}
	raw, _ := json.Marshal(legacy)
	must(t, b.rdb.HSet(b.ctx, "pmsb:prg:prg_legacy", "code", legacy.Code, "patient", pat.ID, "latest", 1, "v:1", raw).Err())
	must(t, b.rdb.SAdd(b.ctx, "pmsb:pat:"+pat.ID+":programmes", "prg_legacy").Err())
	must(t, b.rdb.Set(b.ctx, "pmsb:code:qwertyui", "prg_legacy", 0).Err())

	rotated, _ := store.NewKeyring(testKey(2), testKey(1))
	s2 := b.reopen(t, func(o *store.Options) { o.Keys = rotated })
	for _, code := range []string{v1.Code, legacy.Code} {
		if _, _, err := s2.OpenProgramme(b.ctx, code, 1985, ""); err != nil {
			t.Errorf("before Reencrypt, code %s: %v", code, err)
		}
	}
	v2in := in
	v2in.ID, v2in.Title = v1.ID, "Knee rehab, week 2"
	v2, _, err := s2.CreateProgramme(b.ctx, v2in)
	if err != nil || v2.Version != 2 || v2.Code != v1.Code {
		t.Fatalf("a new version before Reencrypt: %+v, %v", v2, err)
	}
	n, err := s2.Reencrypt(b.ctx)
	must(t, err)
	if n != 3 { // the patient, the programme under the old key, the legacy one
		t.Errorf("Reencrypt rewrote %d records, want 3", n)
	}
	if n, err := s2.Reencrypt(b.ctx); err != nil || n != 0 {
		t.Errorf("second Reencrypt = %d, %v; want 0, nil", n, err)
	}

	onlyNew, _ := store.NewKeyring(testKey(2))
	s3 := b.reopen(t, func(o *store.Options) { o.Keys = onlyNew })
	for _, tc := range []struct {
		code  string
		title string
	}{{v1.Code, "Knee rehab, week 2"}, {legacy.Code, legacy.Title}} {
		got, _, err := s3.OpenProgramme(b.ctx, tc.code, 1985, "")
		if err != nil || got.Title != tc.title {
			t.Errorf("with the new key alone, code %s: %q, %v; want %q", tc.code, got.Title, err, tc.title)
		}
	}
	list, err := s3.ListProgrammes(b.ctx, pat.ID)
	must(t, err)
	var titles []string
	for _, p := range list {
		titles = append(titles, p.Title)
	}
	if diff := cmp.Diff([]string{"Knee rehab, week 2", "Knee rehab after the fall", "Old shoulder plan"}, titles); diff != "" {
		t.Errorf("programmes with the new key alone (-want +got):\n%s", diff)
	}
	dump = dumpDB(t, b)
	for _, secret := range []string{v1.Code, legacy.Code, "Old shoulder plan", in.Notes, b.keys.MAC("code", v1.Code)} {
		if strings.Contains(dump, secret) {
			t.Errorf("after Reencrypt %q is in Redis", secret)
		}
	}
}
