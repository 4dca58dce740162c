package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of an encryption key: AES-256.
const KeySize = 32

// Keyring encrypts values with AES-256-GCM under its current key and decrypts
// values made under any of its keys, so keys can be rotated: deploy the new
// key as current with the old one as previous, run Store.Reencrypt, then drop
// the old key.
//
// A ciphertext reads "v1:<key id>:<base64url(nonce|sealed)>", where the key id
// is the first 8 hex digits of the key's SHA-256. Every value is sealed with
// associated data naming its place (e.g. the patient id), so a value copied to
// another record does not decrypt.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
	// macKeys are derived from the keys, current first: index keys made
	// from secrets (access codes) are keyed hashes under them.
	macKeys [][]byte
}

// NewKeyring returns a keyring that encrypts with current and decrypts with
// current and any of previous. Every key must be KeySize bytes.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("keyring: key %d is %d bytes, want %d: %w", i, len(key), KeySize, ErrInvalid)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		id := KeyID(key)
		if i == 0 {
			k.current = id
		} else if _, dup := k.aeads[id]; dup {
			continue // the same key listed twice
		}
		k.aeads[id] = aead
		m := hmac.New(sha256.New, key)
		m.Write([]byte("pmsbridge index mac key v1"))
		k.macKeys = append(k.macKeys, m.Sum(nil))
	}
	return k, nil
}

// KeyID is the id of a key as it appears in ciphertexts.
func KeyID(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:4])
}

// ParseKey is the one decoder of encryption keys as configured
// (secrets.encryption_key and previous_encryption_keys): base64, standard
// or URL alphabet, padded or not, surrounding space ignored, KeySize bytes.
// Its errors never quote the key, read after the name of the setting
// ("must decode to 32 bytes, got 5"), and satisfy errors.Is(err,
// ErrInvalid).
func ParseKey(b64 string) ([]byte, error) {
	s := strings.TrimRight(strings.TrimSpace(b64), "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, keyError(fmt.Sprintf("must decode to %d bytes, got %d", KeySize, len(b)))
			}
			return b, nil
		}
	}
	return nil, keyError("is not valid base64")
}

// keyError is a problem with a configured key's text.
type keyError string

func (e keyError) Error() string { return string(e) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e keyError) Is(target error) bool { return target == ErrInvalid }

// A nil *Keyring is a store opened without keys: it encrypts and decrypts
// nothing (ErrNoKey) and has nothing to rotate.

// CurrentKeyID is the id of the key that Encrypt uses ("" without keys).
func (k *Keyring) CurrentKeyID() string {
	if k == nil {
		return ""
	}
	return k.current
}

// Encrypt seals plaintext under the current key, bound to aad.
func (k *Keyring) Encrypt(plaintext []byte, aad string) (string, error) {
	if k == nil {
		return "", fmt.Errorf("encrypt: %w", ErrNoKey)
	}
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encrypt: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, plaintext, []byte(aad))
	return "v1:" + k.current + ":" + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// errDecrypt hides why decryption failed: the reason could help an attacker
// and never helps a user.
var errDecrypt = errors.New("decrypt: unknown key or damaged ciphertext")

// Decrypt opens a value made by Encrypt with the same aad under any key of
// the keyring.
func (k *Keyring) Decrypt(ciphertext, aad string) ([]byte, error) {
	if k == nil {
		return nil, fmt.Errorf("decrypt: %w", ErrNoKey)
	}
	version, rest, ok1 := strings.Cut(ciphertext, ":")
	id, data, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || version != "v1" {
		return nil, errDecrypt
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, errDecrypt
	}
	raw, err := base64.RawURLEncoding.DecodeString(data)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, errDecrypt
	}
	out, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, errDecrypt
	}
	return out, nil
}

// NeedsRotation reports whether ciphertext was made under a key other than
// the current one.
func (k *Keyring) NeedsRotation(ciphertext string) bool {
	if k == nil {
		return false
	}
	return !strings.HasPrefix(ciphertext, "v1:"+k.current+":")
}

// MAC is a keyed hash of value for purpose (HMAC-SHA256 under a key
// derived from the current encryption key; 32 hex digits). Index keys
// made from secrets use it, so that Redis never holds the secret: the
// access code index is keyed by MAC("code", code). A rotation changes it:
// look-ups try MACs (every key of the ring) and Store.Reencrypt moves the
// index to the current key.
func (k *Keyring) MAC(purpose, value string) string { return macWith(k.macKeys[0], purpose, value) }

// MACs is MAC under every key of the keyring, the current one first.
func (k *Keyring) MACs(purpose, value string) []string {
	out := make([]string, len(k.macKeys))
	for i, key := range k.macKeys {
		out[i] = macWith(key, purpose, value)
	}
	return out
}

func macWith(key []byte, purpose, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose + "\x00" + value))
	return hex.EncodeToString(m.Sum(nil)[:16])
}
