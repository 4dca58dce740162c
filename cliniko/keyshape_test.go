package cliniko_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
)

// TestCheckKeyShape: what cannot be a key is refused without asking
// Cliniko; every real key shape passes — the documented examples, the
// sandbox's keys, a key from before sharding, base64 with '+', '/', '='.
func TestCheckKeyShape(t *testing.T) {
	t.Parallel()
	for _, key := range []string{
		"MxJrZXkiOiI1Njd1amJmZTQ1NyJ9-au2",               // docs.api.cliniko.com's example
		"MS0xLWl4SzYYYYdtR3V2HNOTAREALKEYwvNHdeW0pd-au2", // the guide's example
		sandbox.DemoAdminKey, sandbox.DemoSchedulerKey, sandbox.DemoUK2AdminKey,
		"MS0legacykeywithoutshardsuffix", // before sharding: au1
		"MS0xLTEyMzQ1Ng+abc/def==-uk1",
		"MS0xLTEyMzQ1Ng_abc-def0123456-ca1",
		strings.Repeat("A", 60) + "-EU1",
	} {
		if err := cliniko.CheckKeyShape(key); err != nil {
			t.Errorf("a real key shape %q refused: %v", key, err)
		}
	}
	for _, tc := range []struct{ key, says string }{
		{"", "Paste your Cliniko API key"},
		{"abc123", "too short"},
		{"abc123-au1", "too short"},
		{"MS0xLWl4SzYYYYdtR3V2HN OTAREALKEY-au2", "no spaces"},
		{`"MS0xLWl4SzYYYYdtR3V2HNOTAREALKEYwvNHdeW0pd-au2"`, "characters a Cliniko API key never has"},
		{"Bearer:MS0xLWl4SzYYYYdtR3V2HNOTAREALKEYwvNHdeW0pd-au2", "characters a Cliniko API key never has"},
		{"MS0xLWl4SzYYYYdtR3V2HNOTAREALKEYwvNHdeW0pd-australia", "does not name a Cliniko region"},
		{strings.Repeat("A", 201), "too long"},
	} {
		err := cliniko.CheckKeyShape(tc.key)
		var e *cliniko.KeyShapeError
		if !errors.Is(err, cliniko.ErrKeyShape) || !errors.As(err, &e) || !strings.Contains(e.Message, tc.says) {
			t.Errorf("CheckKeyShape(%q) = %v, want a refusal saying %q", tc.key, err, tc.says)
			continue
		}
		if len(tc.key) > 6 && strings.Contains(e.Message, tc.key) {
			t.Errorf("the refusal quotes the key: %q", e.Message)
		}
	}
}
