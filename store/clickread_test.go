package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// clickReadProbe runs clickReadLua's readers on one record (ARGV[1], of
// the kind ARGV[2]) and returns what they read, false for nothing.
var clickReadProbe = redis.NewScript(clickReadLua + `
local raw, kind = ARGV[1], ARGV[2]
local function list(l) if l then return table.concat(l, ',') end return false end
if kind == 'practitioner' then
  local p = practitioner(raw)
  return {p.id or false, p.subscription_id or false, p.active and 'active' or 'inactive', name_of(p)}
elseif kind == 'patient' then
  local x = patient(raw)
  return {x.owner_id or false, x.subscription_id or false, list(x.shared_with)}
elseif kind == 'user' then
  return {shard_of(raw) or false}
end
return {list(group_of(raw))}
`)

// TestClickRecordLayout: the click script reads the fields it needs out of
// the JSON that encoding/json writes for the records (clickReadLua), not
// with a JSON parser. On each record, with nested objects that repeat a key
// with another value and string values made to look like keys, it reads
// exactly the top-level values Go decodes; what it cannot read it says so.
func TestClickRecordLayout(t *testing.T) {
	t.Parallel()
	ctx, rdb := context.Background(), redistest.Client(t)
	probe := func(t *testing.T, kind string, v any) []any {
		t.Helper()
		raw, ok := v.(string)
		if !ok {
			raw = string(mustJSON(v))
		}
		got, err := clickReadProbe.Run(ctx, rdb, nil, raw, kind).Slice()
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range got {
			if g == nil {
				got[i] = false
			}
		}
		return got
	}
	forged := `x","active":true,"id":"prac_evil","subscription_id":"sub_evil","owner_id":"prac_evil","shard":"evil","patients":["prac_evil"],"shared_with":["prac_evil"],"name":"evil`
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

	for _, tc := range []struct {
		desc string
		rec  practitionerRecord
		want []any
	}{
		{"plain", practitionerRecord{Practitioner: Practitioner{ID: "prac_a", SubscriptionID: "sub_a", Email: "a@x.example", Name: "Dr Plain Zoë", Active: true, CreatedAt: now}, PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA"},
			[]any{"prac_a", "sub_a", "active", "Dr Plain Zoë"}},
		{"inactive, forged texts", practitionerRecord{Practitioner: Practitioner{ID: "prac_b", SubscriptionID: "sub_b", Email: forged, Name: forged, CreatedAt: now}, PasswordHash: forged},
			[]any{"prac_b", "sub_b", "inactive", forged}},
		{"escapes in the name", practitionerRecord{Practitioner: Practitioner{ID: "prac_c", SubscriptionID: "sub_c", Name: `Zoë O'Brien-Ng <"王"> & co \ `, Active: true}},
			[]any{"prac_c", "sub_c", "active", `Zoë O'Brien-Ng <"王"> & co \ `}},
	} {
		t.Run("practitioner "+tc.desc, func(t *testing.T) {
			if d := cmp.Diff(tc.want, probe(t, "practitioner", tc.rec)); d != "" {
				t.Errorf("read (-want +got):\n%s", d)
			}
		})
	}

	link := &Link{SubscriptionID: "sub_link", Shard: "uk2", ClinikoPatientID: "1", PatientID: "pat_link"}
	for _, tc := range []struct {
		desc string
		rec  patientRecord
		want []any
	}{
		{"shared, with a link", patientRecord{ID: "pat_a", SubscriptionID: "sub_a", OwnerID: "prac_o", SharedWith: []string{"prac_r", "prac_s"}, Link: link, Details: "c2VhbGVk", CreatedAt: now},
			[]any{"prac_o", "sub_a", "prac_r,prac_s"}},
		{"not shared", patientRecord{ID: "pat_b", SubscriptionID: "sub_b", OwnerID: "prac_o", Link: link, Details: forged},
			[]any{"prac_o", "sub_b", ""}},
	} {
		t.Run("patient "+tc.desc, func(t *testing.T) {
			if d := cmp.Diff(tc.want, probe(t, "patient", tc.rec)); d != "" {
				t.Errorf("read (-want +got):\n%s", d)
			}
		})
	}

	account := ClinikoAccount{Shard: "uk2", Businesses: []ClinikoBusiness{{ID: "1", Name: forged}}, CheckedAt: now}
	for _, tc := range []struct {
		desc string
		raw  any
		want []any
	}{
		{"user", ClinikoUser{ID: "9", Name: forged, Email: forged, Role: "administrator", Shard: "au1", Account: account}, []any{"au1"}},
		{"user before accounts were kept", ClinikoUser{ID: "9", Name: "A B", Shard: "au2"}, []any{"au2"}},
		{"user unreadable", "{not json", []any{false}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if d := cmp.Diff(tc.want, probe(t, "user", tc.raw)); d != "" {
				t.Errorf("read (-want +got):\n%s", d)
			}
		})
	}

	for _, tc := range []struct {
		desc string
		raw  any
		want []any
	}{
		{"groups", Sharing{SubscriptionID: "sub_a", Patients: []string{"prac_a", "prac_b"}, Content: []string{"prac_c"}}, []any{"prac_a,prac_b"}},
		{"content group only", Sharing{SubscriptionID: "sub_a", Patients: []string{}, Content: []string{"prac_c"}}, []any{""}},
		{"no groups (null)", Sharing{SubscriptionID: "sub_a"}, []any{""}},
		{"unreadable", "{not json", []any{false}},
	} {
		t.Run("sharing "+tc.desc, func(t *testing.T) {
			if d := cmp.Diff(tc.want, probe(t, "sharing", tc.raw)); d != "" {
				t.Errorf("read (-want +got):\n%s", d)
			}
		})
	}
	if !strings.Contains(string(mustJSON(patientRecord{Link: link})), `"link":{"subscription_id"`) {
		t.Error("the patient's link no longer repeats subscription_id: this test's nested case tests nothing")
	}
}

// TestClickAccess: only the script's reasons that allow open a patient; an
// empty or unknown reason (a script edited wrongly) is an error, never an
// opening.
func TestClickAccess(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{"owner", "shared", "group"} {
		if a, err := clickAccess(reason); err != nil || !a.Allowed || string(a.Reason) != reason {
			t.Errorf("clickAccess(%q) = %+v, %v; want allowed", reason, a, err)
		}
	}
	if a, err := clickAccess("denied"); err != nil || a.Allowed || a.Reason != AccessDenied {
		t.Errorf("clickAccess(denied) = %+v, %v; want refused", a, err)
	}
	for _, reason := range []string{"", "Owner", "allowed", "1"} {
		if a, err := clickAccess(reason); err == nil || a.Allowed {
			t.Errorf("clickAccess(%q) = %+v, %v; want an error", reason, a, err)
		}
	}
}
