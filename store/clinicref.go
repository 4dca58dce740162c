package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A clinic reference names a clinic (a subscription) in the addresses
// patients are given (the access address printed on a programme PDF and
// sent in messages), so that the page they open carries the clinic's name.
// It is a MAC of the subscription id (12 hex digits), never the id itself:
// it cannot be guessed from an id, nor ids or clinics listed by trying
// references. It says nothing about codes or patients.
//
// The reference is remembered when it is made, so a reference printed
// before a rotation of the encryption key (which changes the MAC) still
// works.

// clinicRefLen is the length of a clinic reference (hex digits).
const clinicRefLen = 12

// ClinicRef returns the clinic reference of subscription subID, recording
// it for ClinicByRef.
func (s *Store) ClinicRef(ctx context.Context, subID string) (string, error) {
	if !validID(subID) {
		return "", fmt.Errorf("clinic reference of %q: %w", subID, ErrNotFound)
	}
	ref := s.keys.MAC("clinic-ref", subID)[:clinicRefLen]
	if err := s.rdb.Set(ctx, s.key("clinicref", ref), subID, 0).Err(); err != nil {
		return "", fmt.Errorf("clinic reference of %s: %w", subID, err)
	}
	return ref, nil
}

// ClinicByRef returns the subscription a clinic reference names;
// ErrNotFound for a reference that was never made (or is malformed).
func (s *Store) ClinicByRef(ctx context.Context, ref string) (Subscription, error) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if len(ref) != clinicRefLen || strings.Trim(ref, "0123456789abcdef") != "" {
		return Subscription{}, fmt.Errorf("clinic by reference: %w", ErrNotFound)
	}
	subID, err := s.rdb.Get(ctx, s.key("clinicref", ref)).Result()
	if errors.Is(err, redis.Nil) {
		return Subscription{}, fmt.Errorf("clinic by reference: %w", ErrNotFound)
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("clinic by reference: %w", err)
	}
	return s.GetSubscription(ctx, subID)
}

// ClinicAccessURL is accessURL (where patients open programmes) with the
// clinic reference of subscription subID, for what patients are given
// (PDFs, messages): "https://au.physitrack.com/access?c=3f9a0c1b2d4e". When
// the reference cannot be made it is accessURL alone, which works too
// (without the clinic's name on the page).
func (s *Store) ClinicAccessURL(ctx context.Context, accessURL, subID string) string {
	ref, err := s.ClinicRef(ctx, subID)
	if err != nil || accessURL == "" {
		return accessURL
	}
	return accessURL + "?c=" + url.QueryEscape(ref)
}
