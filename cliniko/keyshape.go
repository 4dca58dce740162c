package cliniko

import (
	"errors"
	"strings"
)

// What a Cliniko API key looks like (cliniko-api.md §1, §2): base64 text —
// letters, digits and '+', '/', '=' (some tools give '-' and '_' instead)
// — of about 28 to 60 characters (the documented examples are
// "MxJrZXkiOiI1Njd1amJmZTQ1NyJ9-au2" and
// "MS0xLWl4SzYYYYdtR3V2HNOTAREALKEYwvNHdeW0pd-au2"; keys issued today are
// longer), then "-" and the shard, which keys from before sharding lack.
// CheckKeyShape refuses what cannot be one without asking Cliniko, and
// never refuses a real key: its bounds are wide.
const (
	// minKeyBody is the fewest characters before the shard suffix (the
	// shortest documented key has 28).
	minKeyBody = 20
	// maxKey is the most characters a key may have.
	maxKey = 200
)

// ErrKeyShape means a text cannot be a Cliniko API key; its message (an
// *KeyShapeError's) says why in a practitioner's words, and never contains
// the text.
var ErrKeyShape = errors.New("not a Cliniko API key")

// KeyShapeError says why a text cannot be a Cliniko API key.
type KeyShapeError struct{ Message string }

func (e *KeyShapeError) Error() string { return "cliniko key: " + e.Message }

// Is makes errors.Is(err, ErrKeyShape) hold.
func (e *KeyShapeError) Is(target error) bool { return target == ErrKeyShape }

// CheckKeyShape reports whether key (trimmed by the caller) can be a
// Cliniko API key: a *KeyShapeError when it is empty, too short or too long,
// has spaces or characters a key never has, or ends in something that is
// not a shard. The error never quotes the key.
func CheckKeyShape(key string) error {
	refuse := func(msg string) error { return &KeyShapeError{Message: msg} }
	switch {
	case key == "":
		return refuse("Paste your Cliniko API key into the box first.")
	case len(key) > maxKey:
		return refuse("That is too long to be a Cliniko API key. Copy only the key from Cliniko (My info → Manage API keys) and paste it again.")
	case strings.ContainsAny(key, " \t\r\n"):
		return refuse("A Cliniko API key has no spaces or line breaks. Copy the key again from Cliniko (My info → Manage API keys) and paste it alone.")
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("+/=-_", r)) {
			return refuse("That has characters a Cliniko API key never has (a key is letters and digits, then \"-\" and its region, such as -au1). Copy the key again from Cliniko (My info → Manage API keys).")
		}
	}
	body := key
	if i := strings.LastIndex(key, "-"); i >= 0 {
		if _, err := ShardFromKey(key); err != nil {
			return refuse(BadShardMessage)
		}
		body = key[:i]
	}
	if len(body) < minKeyBody {
		return refuse("That is too short to be a Cliniko API key: a key has about 40 letters and digits, then \"-\" and its region (such as -au1). Copy the whole key from Cliniko (My info → Manage API keys).")
	}
	return nil
}
