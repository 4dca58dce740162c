package store_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

func TestKeyringRoundTrip(t *testing.T) {
	t.Parallel()
	k, err := store.NewKeyring(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc  string
		plain string
	}{
		{desc: "empty", plain: ""},
		{desc: "ascii", plain: "MS0xMjM0NTY3ODkwMTIzNDU2Nzg5MC1hdTE"},
		{desc: "unicode", plain: "Zoë O'Brien ✓"},
		{desc: "long", plain: strings.Repeat("x", 10000)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			ct, err := k.Encrypt([]byte(tc.plain), "aad")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ct, "v1:"+store.KeyID(testKey(1))+":") {
				t.Errorf("ciphertext %q lacks the v1:<keyid>: prefix", ct)
			}
			if tc.plain != "" && strings.Contains(ct, tc.plain) {
				t.Error("ciphertext contains the plaintext")
			}
			got, err := k.Decrypt(ct, "aad")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.plain, string(got)); diff != "" {
				t.Errorf("Decrypt (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyringRotation(t *testing.T) {
	t.Parallel()
	oldRing, _ := store.NewKeyring(testKey(1))
	newRing, err := store.NewKeyring(testKey(2), testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := oldRing.Encrypt([]byte("secret"), "a")
	got, err := newRing.Decrypt(ct, "a")
	if err != nil || string(got) != "secret" {
		t.Fatalf("new keyring on old ciphertext: %q, %v", got, err)
	}
	if !newRing.NeedsRotation(ct) {
		t.Error("NeedsRotation(old ciphertext) = false")
	}
	fresh, _ := newRing.Encrypt([]byte("secret"), "a")
	if newRing.NeedsRotation(fresh) {
		t.Error("NeedsRotation(fresh ciphertext) = true")
	}
	if _, err := oldRing.Decrypt(fresh, "a"); err == nil {
		t.Error("old keyring decrypted a ciphertext of the new key")
	}
	if got, want := newRing.CurrentKeyID(), store.KeyID(testKey(2)); got != want || len(got) != 8 {
		t.Errorf("CurrentKeyID = %q, want %q (8 hex)", got, want)
	}
}

func TestKeyringRejectsTampering(t *testing.T) {
	t.Parallel()
	k, _ := store.NewKeyring(testKey(1))
	ct, _ := k.Encrypt([]byte("secret value"), "patient:1")
	prefix, data, _ := strings.Cut(ct[3:], ":")
	raw, _ := base64.RawURLEncoding.DecodeString(data)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return "v1:" + prefix + ":" + base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		desc string
		ct   string
		aad  string
	}{
		{desc: "flipped nonce", ct: flip(0), aad: "patient:1"},
		{desc: "flipped body", ct: flip(14), aad: "patient:1"},
		{desc: "flipped tag", ct: flip(len(raw) - 1), aad: "patient:1"},
		{desc: "other record", ct: ct, aad: "patient:2"},
		{desc: "unknown key id", ct: "v1:00000000:" + data, aad: "patient:1"},
		{desc: "other version", ct: "v2" + ct[2:], aad: "patient:1"},
		{desc: "truncated", ct: ct[:20], aad: "patient:1"},
		{desc: "not base64", ct: "v1:" + prefix + ":!!!", aad: "patient:1"},
		{desc: "empty", ct: "", aad: "patient:1"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			if got, err := k.Decrypt(tc.ct, tc.aad); err == nil {
				t.Fatalf("Decrypt = %q, want an error", got)
			}
		})
	}
}

func TestNewKeyringAndParseKey(t *testing.T) {
	t.Parallel()
	key := testKey(7)
	tests := []struct {
		desc    string
		in      string
		wantErr bool
	}{
		{desc: "std padded", in: base64.StdEncoding.EncodeToString(key)},
		{desc: "url raw", in: base64.RawURLEncoding.EncodeToString(key)},
		{desc: "surrounding space", in: " " + base64.StdEncoding.EncodeToString(key) + "\n"},
		{desc: "16 bytes", in: base64.StdEncoding.EncodeToString(key[:16]), wantErr: true},
		{desc: "not base64", in: "not a key!", wantErr: true},
		{desc: "empty", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := store.ParseKey(tc.in)
			if tc.wantErr {
				if !errors.Is(err, store.ErrInvalid) {
					t.Fatalf("ParseKey: err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(key, got); diff != "" {
				t.Errorf("ParseKey (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := store.NewKeyring(key[:31]); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("NewKeyring(31 bytes): err = %v, want ErrInvalid", err)
	}
	if _, err := store.NewKeyring(key, key[:5]); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("NewKeyring(previous 5 bytes): err = %v, want ErrInvalid", err)
	}
}

func TestReencrypt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	p1 := b.patient(t, pr, "1", "One")
	p2 := b.patient(t, pr, "2", "Two")
	if err := b.store.SetClinikoKey(b.ctx, pr.ID, "cliniko-secret-au1", store.ClinikoUser{ID: "9", Shard: "au1"}); err != nil {
		t.Fatal(err)
	}

	rotated, _ := store.NewKeyring(testKey(2), testKey(1))
	s2 := b.reopen(t, func(o *store.Options) { o.Keys = rotated })
	n, err := s2.Reencrypt(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("Reencrypt rewrote %d records, want 3", n)
	}
	if n, err := s2.Reencrypt(b.ctx); err != nil || n != 0 {
		t.Errorf("second Reencrypt = %d, %v; want 0, nil", n, err)
	}

	onlyNew, _ := store.NewKeyring(testKey(2))
	s3 := b.reopen(t, func(o *store.Options) { o.Keys = onlyNew })
	for _, want := range []store.Patient{p1, p2} {
		got, err := s3.GetPatient(b.ctx, want.ID)
		if err != nil {
			t.Fatalf("GetPatient after rotation: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("patient after rotation (-want +got):\n%s", diff)
		}
	}
	key, _, err := s3.ClinikoKey(b.ctx, pr.ID)
	if err != nil || key != "cliniko-secret-au1" {
		t.Errorf("ClinikoKey after rotation = %q, %v", key, err)
	}
	// The old key alone no longer reads the records.
	if _, err := b.store.GetPatient(b.ctx, p1.ID); err == nil {
		t.Error("old keyring still decrypts a rotated patient")
	}
}

// TestReencryptReportsRedisErrors: Reencrypt's nil error is what tells the
// operator the old key may be dropped, so a Cliniko key it could not read
// must fail the run, not be skipped.
func TestReencryptReportsRedisErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pr := b.practitioner(t, b.subscription(t, "Clinic").ID, "a@example.com")
	if err := b.store.SetClinikoKey(b.ctx, pr.ID, "cliniko-secret-au1", store.ClinikoUser{ID: "9", Shard: "au1"}); err != nil {
		t.Fatal(err)
	}
	faulty := redis.NewClient(b.rdb.Options())
	t.Cleanup(func() { faulty.Close() })
	faulty.AddHook(&faultHook{after: "hget"})
	rotated, _ := store.NewKeyring(testKey(2), testKey(1))
	opts := b.opts
	opts.Keys = rotated
	s2, err := store.New(faulty, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s2.Reencrypt(b.ctx); err == nil {
		t.Errorf("Reencrypt = %d, nil after a failed read of the Cliniko key; want an error", n)
	}
	if n, err := s2.Reencrypt(b.ctx); err != nil || n != 1 {
		t.Errorf("second Reencrypt = %d, %v; want 1, nil", n, err)
	}
}

// TestStoreWithoutKeys: a store opened without keys (the read-only support
// commands) reads what is not encrypted — the failure ledger, practitioners
// — and refuses encrypted fields with ErrNoKey, reading and writing.
func TestStoreWithoutKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	pr := b.practitioner(t, sub.ID, "a@example.com")
	p := b.patient(t, pr, "1", "One")
	if err := b.store.SetClinikoKey(b.ctx, pr.ID, "cliniko-secret-au1", store.ClinikoUser{ID: "9", Shard: "au1"}); err != nil {
		t.Fatal(err)
	}
	if err := b.store.RecordFailure(b.ctx, store.Failure{TaskID: "import:x", Type: "t", Permanent: true, Cause: "cliniko_not_found", Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	keyless := b.reopen(t, func(o *store.Options) { o.Keys = nil })

	if fs, err := keyless.ListFailures(b.ctx, store.FailureFilter{}); err != nil || len(fs) != 1 {
		t.Errorf("ListFailures without keys = %v, %v; want the one entry", fs, err)
	}
	if got, err := keyless.GetPractitioner(b.ctx, pr.ID); err != nil || got.Email != "a@example.com" {
		t.Errorf("GetPractitioner without keys = %+v, %v", got, err)
	}
	if _, err := keyless.GetPatient(b.ctx, p.ID); !errors.Is(err, store.ErrNoKey) {
		t.Errorf("GetPatient without keys: %v, want ErrNoKey", err)
	}
	if _, _, err := keyless.ClinikoKey(b.ctx, pr.ID); !errors.Is(err, store.ErrNoKey) {
		t.Errorf("ClinikoKey without keys: %v, want ErrNoKey", err)
	}
	if err := keyless.SetClinikoKey(b.ctx, pr.ID, "another-au1", store.ClinikoUser{ID: "9", Shard: "au1"}); !errors.Is(err, store.ErrNoKey) {
		t.Errorf("SetClinikoKey without keys: %v, want ErrNoKey", err)
	}
	if _, err := keyless.Reencrypt(b.ctx); !errors.Is(err, store.ErrNoKey) {
		t.Errorf("Reencrypt without keys: %v, want ErrNoKey", err)
	}
	// Nothing was overwritten: the key still reads with the keys.
	if key, _, err := b.store.ClinikoKey(b.ctx, pr.ID); err != nil || key != "cliniko-secret-au1" {
		t.Errorf("ClinikoKey after the keyless attempts = %q, %v", key, err)
	}
}
