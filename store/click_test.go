package store_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/physitrack/pmsbridge/internal/redistest"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// clickWorld is a world in which everyone has a Cliniko key on the
// patient's shard and a session.
type clickWorld struct {
	*world
	tokens map[string]string // by practitioner id
}

func newClickWorld(t testing.TB, b *bundle) *clickWorld {
	t.Helper()
	w := &clickWorld{world: newWorld(t, b), tokens: map[string]string{}}
	for _, p := range []store.Practitioner{w.owner, w.reader, w.third, w.stranger} {
		must(t, b.store.SetClinikoKey(b.ctx, p.ID, "key-"+p.ID, store.ClinikoUser{ID: "u-" + p.ID, Name: p.Name, Shard: "au1"}))
		tok, _, err := b.store.CreateSession(b.ctx, p.ID, "", "")
		must(t, err)
		w.tokens[p.ID] = tok
	}
	return w
}

// patientClinikoID is the world's patient's Cliniko id (newWorld).
const patientClinikoID = "100"

// TestClickAgreesWithCanOpen runs every sharing situation through the
// click script and through CanOpen: where the click decides, it decides
// as CanOpen does, owner's name included; where it does not, CanOpen
// refuses too (the reader's session ended with their deactivation, or the
// reader's subscription has no such link).
//
// It runs on redis-server and on miniredis, the in-process Redis of
// `pmsbridge dev`, whose Lua (gopher-lua) runs the same script.
func TestClickAgreesWithCanOpen(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) *bundle{
		"redis": func(t *testing.T) *bundle { return setup(t) },
		"miniredis": func(t *testing.T) *bundle {
			mr := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			t.Cleanup(func() { rdb.Close() })
			return setupOn(t, rdb)
		},
	}
	for name, setup := range backends {
		for _, tc := range sharingSituations() {
			t.Run(name+"/"+tc.desc, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				w := newClickWorld(t, b)
				reader := tc.arrange(t, b, w.world)
				patient, err := b.store.GetPatient(b.ctx, w.patient.ID)
				must(t, err)
				can, err := b.store.CanOpen(b.ctx, reader, patient)
				must(t, err)
				if d := cmp.Diff(tc.wantFor(w.world), can); d != "" {
					t.Fatalf("CanOpen (-want +got):\n%s", d)
				}
				rc, err := b.store.ResolveClick(b.ctx, w.tokens[reader.ID], patientClinikoID)
				switch {
				case errors.Is(err, store.ErrNotFound):
					if b.practitionerNow(t, reader.ID).Active || can.Allowed {
						t.Errorf("no session for an active practitioner, or CanOpen allows (%+v)", can)
					}
				case err != nil:
					t.Fatal(err)
				case rc.Outcome == store.ClickNotLinked:
					if reader.SubscriptionID == patient.SubscriptionID || can.Allowed {
						t.Errorf("not linked for a practitioner of the patient's subscription, or CanOpen allows (%+v)", can)
					}
				case rc.Outcome == store.ClickDecided:
					if rc.PatientID != patient.ID {
						t.Errorf("click found patient %q, want %q", rc.PatientID, patient.ID)
					}
					if can.Allowed {
						can.OwnerName = "" // an allowed click does not read it
					}
					if d := cmp.Diff(can, rc.Access); d != "" {
						t.Errorf("click script and CanOpen disagree (-CanOpen +click):\n%s", d)
					}
				default:
					t.Errorf("click undecided: %+v", rc)
				}
			})
		}
	}
}

// TestResolveClick: what the click returns besides the decision, and the
// cases the script leaves to the ordinary way.
func TestResolveClick(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := newClickWorld(t, b)
	owner := w.tokens[w.owner.ID]

	ignoreRaw := cmpopts.IgnoreUnexported(store.ResolvedClick{})
	rc, err := b.store.ResolveClick(b.ctx, owner, patientClinikoID)
	must(t, err)
	want := store.ResolvedClick{PractitionerID: w.owner.ID, Outcome: store.ClickDecided, PatientID: w.patient.ID, RefreshDue: true,
		Access: store.Access{Allowed: true, Reason: store.AccessOwner, OwnerID: w.owner.ID}}
	if d := cmp.Diff(want, rc, ignoreRaw); d != "" || !rc.Allowed() {
		t.Errorf("owner's click (-want +got):\n%s", d)
	}
	if _, _, _, err := rc.Login(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an allowed click's Login: %v, want ErrNotFound (it reads no records)", err)
	}
	free, err := b.store.DebounceRefresh(b.ctx, w.patient.ID, time.Minute)
	must(t, err)
	rc, err = b.store.ResolveClick(b.ctx, owner, patientClinikoID)
	if err != nil || !free || rc.RefreshDue || !rc.Allowed() {
		t.Errorf("with the refresh debounce taken: %+v, %v; want allowed, no refresh due", rc, err)
	}

	// login checks what the click read for the ordinary way.
	login := func(what string, rc store.ResolvedClick, pr store.Practitioner, hasKey bool) {
		t.Helper()
		gotPr, gotUser, gotHasKey, err := rc.Login()
		wantPr, wantUser, _, werr := b.store.PractitionerWithCliniko(b.ctx, pr.ID)
		must(t, werr)
		if !hasKey {
			wantUser = store.ClinikoUser{}
		}
		if d := cmp.Diff(wantPr, gotPr); err != nil || d != "" || gotHasKey != hasKey {
			t.Errorf("%s: Login: %v, key %v (-want +got):\n%s", what, err, gotHasKey, d)
		}
		if d := cmp.Diff(wantUser, gotUser); d != "" {
			t.Errorf("%s: Login's Cliniko user (-want +got):\n%s", what, d)
		}
	}

	rc, err = b.store.ResolveClick(b.ctx, owner, "999")
	must(t, err)
	if rc.Outcome != store.ClickNotLinked || rc.PatientID != "" || rc.RefreshDue {
		t.Errorf("a patient not linked: %+v", rc)
	}
	login("not linked", rc, w.owner, true)

	rc, err = b.store.ResolveClick(b.ctx, w.tokens[w.reader.ID], patientClinikoID)
	must(t, err)
	if rc.Outcome != store.ClickDecided || rc.Allowed() || rc.Access.OwnerName != w.owner.Name || rc.RefreshDue {
		t.Errorf("a colleague's patient: %+v", rc)
	}
	login("refused", rc, w.reader, true)

	for _, bad := range []string{"", "nope", owner + "x"} {
		if _, err := b.store.ResolveClick(b.ctx, bad, patientClinikoID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ResolveClick(token %q): %v, want ErrNotFound", bad, err)
		}
	}
	if _, err := b.store.ResolveClick(b.ctx, owner, "1:2"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a Cliniko id that is no id: %v, want ErrInvalid", err)
	}

	t.Run("no key", func(t *testing.T) {
		must(t, b.store.DeleteClinikoKey(b.ctx, w.third.ID))
		rc, err := b.store.ResolveClick(b.ctx, w.tokens[w.third.ID], patientClinikoID)
		must(t, err)
		if rc.Outcome != store.ClickUndecided || rc.PractitionerID != w.third.ID {
			t.Errorf("ResolveClick = %+v, want undecided", rc)
		}
		login("no key", rc, w.third, false)
	})
	t.Run("inactive, session still there", func(t *testing.T) {
		// Deactivate ends sessions; this is the moment between its two
		// steps, or a record changed by hand.
		key := "pmsb:prac:" + w.reader.ID
		var rec map[string]any
		must(t, json.Unmarshal([]byte(b.rdb.Get(b.ctx, key).Val()), &rec))
		rec["active"] = false
		raw, _ := json.Marshal(rec)
		must(t, b.rdb.Set(b.ctx, key, raw, 0).Err())
		rc, err := b.store.ResolveClick(b.ctx, w.tokens[w.reader.ID], patientClinikoID)
		must(t, err)
		pr, _, _, err := rc.Login()
		if err != nil || pr.ID != w.reader.ID || pr.Active || rc.Outcome != store.ClickUndecided {
			t.Errorf("ResolveClick = %+v, Login %+v, %v; want the inactive practitioner, undecided", rc, pr, err)
		}
	})
	t.Run("practitioner gone", func(t *testing.T) {
		must(t, b.rdb.Del(b.ctx, "pmsb:prac:"+w.stranger.ID).Err())
		if _, err := b.store.ResolveClick(b.ctx, w.tokens[w.stranger.ID], patientClinikoID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ResolveClick: %v, want ErrNotFound (as PractitionerWithCliniko)", err)
		}
	})
	t.Run("unreadable Cliniko user", func(t *testing.T) {
		p := b.practitioner(t, w.owner.SubscriptionID, "broken@example.com")
		tok, _, err := b.store.CreateSession(b.ctx, p.ID, "", "")
		must(t, err)
		must(t, b.rdb.HSet(b.ctx, "pmsb:prac:"+p.ID+":cliniko", "user", "{not json").Err())
		rc, err := b.store.ResolveClick(b.ctx, tok, patientClinikoID)
		if err == nil {
			_, _, _, err = rc.Login()
		}
		_, _, _, perr := b.store.PractitionerWithCliniko(b.ctx, p.ID)
		if err == nil || perr == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("ResolveClick: %v; PractitionerWithCliniko: %v; want both to fail, not as not found", err, perr)
		}
	})
	t.Run("link to a patient that is gone", func(t *testing.T) {
		must(t, b.rdb.HSet(b.ctx, "pmsb:links:"+w.owner.SubscriptionID+":au1", "555", "pat_gone").Err())
		rc, err := b.store.ResolveClick(b.ctx, owner, "555")
		if err != nil || rc.Outcome != store.ClickUndecided {
			t.Errorf("ResolveClick = %+v, %v; want undecided (the ordinary way says not found)", rc, err)
		}
	})
	t.Run("unreadable sharing groups", func(t *testing.T) {
		must(t, b.rdb.Set(b.ctx, "pmsb:sub:"+w.owner.SubscriptionID+":sharing", "{not json", 0).Err())
		must(t, b.store.Share(b.ctx, w.patient.ID, w.third.ID))
		rc, err := b.store.ResolveClick(b.ctx, w.tokens[w.third.ID], patientClinikoID)
		if err != nil || rc.Outcome != store.ClickUndecided {
			t.Errorf("ResolveClick = %+v, %v; want undecided (CanOpen fails on them)", rc, err)
		}
		must(t, b.rdb.Del(b.ctx, "pmsb:sub:"+w.owner.SubscriptionID+":sharing").Err())
	})
}

// TestClickLinkToAnotherClinic: a link that names another subscription's
// patient (it cannot be made through the store) is refused without naming
// the owner, as CanOpen refuses a stranger.
func TestClickLinkToAnotherClinic(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := newClickWorld(t, b)
	must(t, b.rdb.HSet(b.ctx, "pmsb:links:"+w.stranger.SubscriptionID+":au1", patientClinikoID, w.patient.ID).Err())
	rc, err := b.store.ResolveClick(b.ctx, w.tokens[w.stranger.ID], patientClinikoID)
	must(t, err)
	can, err := b.store.CanOpen(b.ctx, w.stranger, w.patient)
	must(t, err)
	if rc.Outcome != store.ClickDecided || rc.Access.Allowed || rc.Access.OwnerName != "" {
		t.Errorf("ResolveClick = %+v, want decided, refused, no owner named", rc)
	}
	if d := cmp.Diff(can, rc.Access); d != "" {
		t.Errorf("click script and CanOpen disagree (-CanOpen +click):\n%s", d)
	}
}

// TestClickSessionLikeGetSession: two sessions made at the same moment, one
// read by GetSession and the other by the click, step for step through idle
// and absolute expiry: after every step both are found or both are gone,
// with the same last-seen time and the same Redis TTL.
func TestClickSessionLikeGetSession(t *testing.T) {
	t.Parallel()
	const idle = 12 * time.Hour
	tests := []struct {
		desc  string
		steps []time.Duration // clock advances, each followed by a read
		gone  bool            // the session has ended after the last step
	}{
		{desc: "fresh", steps: []time.Duration{0}},
		{desc: "within a minute, then after", steps: []time.Duration{30 * time.Second, 29 * time.Second, 2 * time.Second, 10 * time.Second}},
		{desc: "used within idle", steps: []time.Duration{11 * time.Hour, 11 * time.Hour}},
		{desc: "idle", steps: []time.Duration{idle}, gone: true},
		{desc: "almost idle, then used", steps: []time.Duration{idle - time.Second, time.Second}},
		{desc: "near the absolute end", steps: repeat(11*time.Hour, 15)},
		{desc: "past the absolute end", steps: append(repeat(11*time.Hour, 15), 3*time.Hour), gone: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			w := newClickWorld(t, b)
			byGet := w.tokens[w.owner.ID]
			byClick, _, err := b.store.CreateSession(b.ctx, w.owner.ID, "", "")
			must(t, err)
			var cerr error
			for i, d := range tc.steps {
				b.clock.Advance(d)
				_, gerr := b.store.GetSession(b.ctx, byGet)
				_, cerr = b.store.ResolveClick(b.ctx, byClick, patientClinikoID)
				if (gerr == nil) != (cerr == nil) || (gerr != nil && !errors.Is(cerr, store.ErrNotFound)) {
					t.Fatalf("step %d: GetSession %v, click %v", i, gerr, cerr)
				}
				gl := b.rdb.HGet(b.ctx, sessionKeyOf(byGet), "last").Val()
				cl := b.rdb.HGet(b.ctx, sessionKeyOf(byClick), "last").Val()
				if gl != cl {
					t.Errorf("step %d: last seen %q by GetSession, %q by the click", i, gl, cl)
				}
				gt, ct := b.rdb.PTTL(b.ctx, sessionKeyOf(byGet)).Val(), b.rdb.PTTL(b.ctx, sessionKeyOf(byClick)).Val()
				if diff := gt - ct; diff > 5*time.Second || diff < -5*time.Second {
					t.Errorf("step %d: TTL %v by GetSession, %v by the click", i, gt, ct)
				}
			}
			if gone := errors.Is(cerr, store.ErrNotFound); gone != tc.gone {
				t.Errorf("after the last step the session is gone: %v, want %v", gone, tc.gone)
			}
			if n := b.rdb.Exists(b.ctx, sessionKeyOf(byClick)).Val(); (n == 0) != tc.gone {
				t.Errorf("session key exists: %d, want gone: %v", n, tc.gone)
			}
		})
	}
}

// TestResolveClickIsOneRoundTrip: the click is one round trip for every
// kind of reader (the first run of a script on a Redis that does not know
// it yet takes a second, EVAL, which the warm-up takes here).
func TestResolveClickIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := newClickWorld(t, b)
	must(t, b.store.Share(b.ctx, w.patient.ID, w.reader.ID))
	_, err := b.store.ResolveClick(b.ctx, w.tokens[w.owner.ID], patientClinikoID) // loads the script
	must(t, err)
	trips := redistest.Watch(b.rdb)
	for _, p := range []store.Practitioner{w.owner, w.reader, w.third} {
		trips.Record()
		rc, err := b.store.ResolveClick(b.ctx, w.tokens[p.ID], patientClinikoID)
		got := trips.Stop()
		must(t, err)
		if rc.Outcome != store.ClickDecided {
			t.Fatalf("%s: %+v", p.Name, rc)
		}
		if len(got) != 1 || len(got[0]) != 1 || !strings.HasPrefix(got[0][0], "evalsha ") {
			t.Errorf("%s (%s): round trips %v, want one EVALSHA", p.Name, rc.Access.Reason, got)
		}
	}
}

// BenchmarkClickRedisCost: what one linked click costs Redis itself (its
// CPU, from INFO commandstats: the script's EVALSHA, the commands it calls
// included) and the round trip, against the receiver benchmark's bare
// baseline (HGET of the session's practitioner, then HGET of the link).
// Redis is single-threaded and shares the machine with the app, so its
// CPU per click is part of what the receiver's requests/s pays for.
//
//	go test ./store -run '^$' -bench ClickRedisCost -count 5
func BenchmarkClickRedisCost(b *testing.B) {
	bd := setup(b)
	w := newClickWorld(b, bd)
	ctx, rdb := bd.ctx, bd.rdb
	token := w.tokens[w.owner.ID]
	// As in the receiver benchmark: the refresh debounce is taken.
	if _, err := bd.store.DebounceRefresh(ctx, w.patient.ID, time.Hour); err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256([]byte(token))
	sessKey, linksKey := "pmsb:sess:"+hex.EncodeToString(sum[:]), "pmsb:links:"+w.owner.SubscriptionID+":au1"
	// redisMicros is Redis's own time in commands since the last reset.
	redisMicros := func(b *testing.B) float64 {
		info, err := rdb.Info(ctx, "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		var total float64
		for _, line := range strings.Split(info, "\n") {
			if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_hget:") {
				continue // the commands a script calls are inside its EVALSHA's time
			}
			for _, f := range strings.Split(strings.TrimSpace(line[strings.Index(line, ":")+1:]), ",") {
				if v, ok := strings.CutPrefix(f, "usec="); ok {
					n, err := strconv.ParseFloat(v, 64)
					if err != nil {
						b.Fatal(err)
					}
					total += n
				}
			}
		}
		return total
	}
	for _, bc := range []struct {
		name  string
		click func() error
	}{
		{"script", func() error {
			rc, err := bd.store.ResolveClick(ctx, token, patientClinikoID)
			if err == nil && rc.PatientID != w.patient.ID {
				err = fmt.Errorf("resolved %+v", rc)
			}
			return err
		}},
		{"two-hgets", func() error {
			pid, err := rdb.HGet(ctx, sessKey, "pid").Result()
			if err != nil {
				return err
			}
			if pid != w.owner.ID {
				return fmt.Errorf("session of %q", pid)
			}
			pat, err := rdb.HGet(ctx, linksKey, patientClinikoID).Result()
			if err == nil && pat != w.patient.ID {
				err = fmt.Errorf("link to %q", pat)
			}
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if err := bc.click(); err != nil { // loads the script
				b.Fatal(err)
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := bc.click(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(redisMicros(b)/float64(b.N), "redis-µs/op")
		})
	}
}
