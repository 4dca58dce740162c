package store_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
)

func TestSessionCreateGet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	p := b.practitioner(t, sub.ID, "a@example.com")
	token, sess, err := b.store.CreateSession(b.ctx, p.ID, "10.0.0.1", "Firefox")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not 32 bytes of base64url: %v", token, err)
	}
	now := b.clock.Now()
	want := store.Session{PractitionerID: p.ID, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(12 * time.Hour), IP: "10.0.0.1", UserAgent: "Firefox"}
	if diff := cmp.Diff(want, sess); diff != "" {
		t.Errorf("CreateSession (-want +got):\n%s", diff)
	}
	got, err := b.store.GetSession(b.ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetSession (-want +got):\n%s", diff)
	}
	h := sha256.Sum256([]byte(token))
	if n := b.rdb.Exists(b.ctx, "pmsb:sess:"+hex.EncodeToString(h[:])).Val(); n != 1 {
		t.Error("session not stored under the sha256 of its token")
	}
	for _, bad := range []string{"", "nope", token + "x"} {
		if _, err := b.store.GetSession(b.ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession(%q): err = %v, want ErrNotFound", bad, err)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	const idle, absolute = 12 * time.Hour, 7 * 24 * time.Hour
	tests := []struct {
		desc string
		// steps are clock advances, each followed by a GetSession.
		steps   []time.Duration
		wantErr bool
		// wantTTL is the Redis TTL after the last step.
		wantTTL time.Duration
	}{
		{desc: "fresh", steps: []time.Duration{0}, wantTTL: idle},
		{desc: "used within idle", steps: []time.Duration{11 * time.Hour, 11 * time.Hour}, wantTTL: idle},
		{desc: "idle", steps: []time.Duration{idle}, wantErr: true},
		{desc: "almost idle", steps: []time.Duration{idle - time.Second}, wantTTL: idle},
		{desc: "used every 11h for 154h", steps: repeat(11*time.Hour, 14), wantTTL: idle},
		{desc: "near the absolute end the TTL shrinks", steps: repeat(11*time.Hour, 15), wantTTL: absolute - 165*time.Hour},
		{desc: "absolute", steps: append(repeat(11*time.Hour, 15), 3*time.Hour), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			sub := b.subscription(t, "Clinic")
			p := b.practitioner(t, sub.ID, "a@example.com")
			token, _, err := b.store.CreateSession(b.ctx, p.ID, "", "")
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range tc.steps {
				b.clock.Advance(d)
				_, err = b.store.GetSession(b.ctx, token)
				if i < len(tc.steps)-1 && err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if tc.wantErr {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("GetSession: err = %v, want ErrNotFound", err)
				}
				if n := len(b.rdb.Keys(b.ctx, "pmsb:sess:*").Val()); n != 0 {
					t.Errorf("%d session keys left after expiry", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ttl := b.rdb.PTTL(b.ctx, sessionKeyOf(token)).Val()
			if ttl > tc.wantTTL || ttl < tc.wantTTL-5*time.Second {
				t.Errorf("Redis TTL = %v, want about %v", ttl, tc.wantTTL)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func sessionKeyOf(token string) string {
	h := sha256.Sum256([]byte(token))
	return "pmsb:sess:" + hex.EncodeToString(h[:])
}

func TestSessionRefreshAtMostOncePerMinute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	p := b.practitioner(t, sub.ID, "a@example.com")
	token, created, err := b.store.CreateSession(b.ctx, p.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(30 * time.Second)
	s1, err := b.store.GetSession(b.ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if !s1.LastSeenAt.Equal(created.LastSeenAt) {
		t.Errorf("after 30s LastSeenAt = %v, want unchanged %v", s1.LastSeenAt, created.LastSeenAt)
	}
	b.clock.Advance(31 * time.Second)
	s2, err := b.store.GetSession(b.ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if want := b.clock.Now(); !s2.LastSeenAt.Equal(want) || !s2.ExpiresAt.Equal(want.Add(12*time.Hour)) {
		t.Errorf("after 61s LastSeenAt = %v, ExpiresAt = %v; want %v and +12h", s2.LastSeenAt, s2.ExpiresAt, want)
	}
}

func TestSessionsEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		end  func(b *bundle, p store.Practitioner, token string) error
		// otherSurvives: a session of another practitioner is untouched.
	}{
		{desc: "delete session", end: func(b *bundle, _ store.Practitioner, token string) error {
			return b.store.DeleteSession(b.ctx, token)
		}},
		{desc: "delete sessions of", end: func(b *bundle, p store.Practitioner, _ string) error {
			return b.store.DeleteSessionsOf(b.ctx, p.ID)
		}},
		{desc: "deactivate", end: func(b *bundle, p store.Practitioner, _ string) error {
			return b.store.Deactivate(b.ctx, p.ID)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			sub := b.subscription(t, "Clinic")
			p := b.practitioner(t, sub.ID, "a@example.com")
			other := b.practitioner(t, sub.ID, "b@example.com")
			token, _, err := b.store.CreateSession(b.ctx, p.ID, "", "")
			if err != nil {
				t.Fatal(err)
			}
			otherToken, _, err := b.store.CreateSession(b.ctx, other.ID, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.end(b, p, token); err != nil {
				t.Fatal(err)
			}
			if _, err := b.store.GetSession(b.ctx, token); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetSession: err = %v, want ErrNotFound", err)
			}
			if _, err := b.store.GetSession(b.ctx, otherToken); err != nil {
				t.Errorf("other practitioner's session: %v", err)
			}
		})
	}
}

func TestCreateSessionInactive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	p := b.practitioner(t, sub.ID, "a@example.com")
	if err := b.store.Deactivate(b.ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.store.CreateSession(b.ctx, p.ID, "", ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("CreateSession(inactive): err = %v, want ErrInvalid", err)
	}
	if _, _, err := b.store.CreateSession(b.ctx, "prac_missing", "", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateSession(missing): err = %v, want ErrNotFound", err)
	}
	if n := len(b.rdb.Keys(b.ctx, "pmsb:sess:*").Val()); n != 0 {
		t.Errorf("%d session keys, want 0", n)
	}
}
