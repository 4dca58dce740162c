package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// ClinikoAccount is the Cliniko account (the clinic) a key belongs to, as
// far as the API can tell: Cliniko exposes no account id, but a key sees
// exactly its own account's businesses (GET /businesses), so an account is
// known by its shard and its businesses' ids. Two accounts are the same
// when they are on the same shard and share a business (Same), which stays
// true when the clinic opens or closes a location.
type ClinikoAccount struct {
	Shard string `json:"shard"`
	// Businesses are sorted by id, without repeats.
	Businesses []ClinikoBusiness `json:"businesses"`
	// CheckedAt is when the businesses were read from Cliniko.
	CheckedAt time.Time `json:"checked_at"`
}

// ClinikoBusiness is one of a Cliniko account's businesses (locations).
type ClinikoBusiness struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// CountryCode is ISO 3166-1 alpha-2 as Cliniko gives it ("AU", "GB");
	// "" when unknown.
	CountryCode string `json:"country_code"`
	// TimeZone is the business's IANA time zone; "" when Cliniko gave none
	// or one that does not load.
	TimeZone string `json:"time_zone"`
}

// NewClinikoAccount builds the account of a key from what GET /businesses
// returned on its shard, read at checkedAt: business ids sorted and
// unique, names trimmed, country codes in upper case, time zones kept only
// when they load.
func NewClinikoAccount(shard string, businesses []ClinikoBusiness, checkedAt time.Time) ClinikoAccount {
	a := ClinikoAccount{Shard: strings.ToLower(strings.TrimSpace(shard)), CheckedAt: checkedAt.UTC().Round(0)}
	for _, b := range businesses {
		b.ID = strings.TrimSpace(b.ID)
		if b.ID == "" {
			continue
		}
		b.Name = strings.TrimSpace(b.Name)
		b.CountryCode = strings.ToUpper(strings.TrimSpace(b.CountryCode))
		if _, err := pmsbridge.LoadTimeZone(b.TimeZone); err != nil {
			b.TimeZone = ""
		}
		a.Businesses = append(a.Businesses, b)
	}
	slices.SortFunc(a.Businesses, func(x, y ClinikoBusiness) int {
		return cmp.Or(cmp.Compare(len(x.ID), len(y.ID)), strings.Compare(x.ID, y.ID))
	})
	a.Businesses = slices.CompactFunc(a.Businesses, func(x, y ClinikoBusiness) bool { return x.ID == y.ID })
	return a
}

// Known reports whether the account could be read (a shard and at least
// one business). An unknown account is never the Same as another.
func (a ClinikoAccount) Known() bool { return a.Shard != "" && len(a.Businesses) > 0 }

// Same reports whether a and b are the same Cliniko account: both known,
// on the same shard, with a business in common.
func (a ClinikoAccount) Same(b ClinikoAccount) bool {
	if !a.Known() || !b.Known() || a.Shard != b.Shard {
		return false
	}
	for _, x := range a.Businesses {
		for _, y := range b.Businesses {
			if x.ID == y.ID {
				return true
			}
		}
	}
	return false
}

// ID is a stable text for the account, for logs and comparisons by eye:
// "au1:101,102" (shard and business ids). "" when unknown.
func (a ClinikoAccount) ID() string {
	if !a.Known() {
		return ""
	}
	ids := make([]string, len(a.Businesses))
	for i, b := range a.Businesses {
		ids[i] = b.ID
	}
	return a.Shard + ":" + strings.Join(ids, ",")
}

// Name is the account's name for pages: its businesses' names, joined with
// ", " ("" when unknown).
func (a ClinikoAccount) Name() string {
	var names []string
	for _, b := range a.Businesses {
		if b.Name != "" && !slices.Contains(names, b.Name) {
			names = append(names, b.Name)
		}
	}
	return strings.Join(names, ", ")
}

// Label is the account as pages name it: its name and its businesses'
// countries, "Demo Physio Clinic (Australia)"; "" when unknown.
func (a ClinikoAccount) Label() string {
	name := a.Name()
	if name == "" {
		return ""
	}
	var cs []string
	for _, c := range a.Countries() {
		cs = append(cs, pmsbridge.CountryName(c))
	}
	if len(cs) == 0 {
		return name
	}
	return name + " (" + strings.Join(cs, ", ") + ")"
}

// Countries are the businesses' country codes, sorted and unique.
func (a ClinikoAccount) Countries() []string {
	var out []string
	for _, b := range a.Businesses {
		if b.CountryCode != "" {
			out = append(out, b.CountryCode)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TimeZone is the IANA zone of the account's businesses when they all have
// the same one; "" when none has one or they differ (a clinic with
// locations in several zones chooses its own).
func (a ClinikoAccount) TimeZone() string {
	zone := ""
	for _, b := range a.Businesses {
		switch {
		case b.TimeZone == "":
			return ""
		case zone == "":
			zone = b.TimeZone
		case zone != b.TimeZone:
			return ""
		}
	}
	return zone
}

func (s *Store) subClinikoKey(subID string) string { return s.key("sub", subID, "cliniko") }

// SubscriptionClinikoAccount returns the Cliniko account that a
// subscription's patients linked on shard come from; ok is false while none
// is recorded.
func (s *Store) SubscriptionClinikoAccount(ctx context.Context, subID, shard string) (a ClinikoAccount, ok bool, err error) {
	if !validID(subID) || !validID(shard) {
		return a, false, nil
	}
	b, err := s.rdb.HGet(ctx, s.subClinikoKey(subID), strings.ToLower(shard)).Bytes()
	if errors.Is(err, redis.Nil) {
		return a, false, nil
	}
	if err == nil {
		err = jsonUnmarshal(b, &a)
	}
	if err != nil {
		return a, false, fmt.Errorf("cliniko account of %s/%s: %w", subID, shard, err)
	}
	return a, true, nil
}

// SubscriptionClinikoAccounts returns every Cliniko account a
// subscription's patients come from, by shard (empty when none is
// recorded).
func (s *Store) SubscriptionClinikoAccounts(ctx context.Context, subID string) (map[string]ClinikoAccount, error) {
	out := map[string]ClinikoAccount{}
	if !validID(subID) {
		return out, nil
	}
	h, err := s.rdb.HGetAll(ctx, s.subClinikoKey(subID)).Result()
	if err != nil {
		return nil, fmt.Errorf("cliniko accounts of %s: %w", subID, err)
	}
	for shard, v := range h {
		var a ClinikoAccount
		if err := jsonUnmarshal([]byte(v), &a); err != nil {
			return nil, fmt.Errorf("cliniko accounts of %s: %w", subID, err)
		}
		out[shard] = a
	}
	return out, nil
}

// AccountMatch says whether a key belongs to the Cliniko account of a
// clinic's patients.
type AccountMatch int

// The answers of MatchAccount.
const (
	AccountUnknown AccountMatch = iota // cannot tell (nothing recorded to compare)
	AccountSame                        // the clinic's account
	AccountOther                       // another Cliniko account than the clinic's patients'
)

// MatchAccount compares the Cliniko account of key user u with clinic, the
// accounts a subscription's patients come from (by shard,
// SubscriptionClinikoAccounts). A key on a shard where the clinic has an
// account is compared with it (Same), or judged by its probe when either
// account could not be read; a key on a shard where the clinic has none,
// while the clinic has one elsewhere, is of another account (Cliniko
// accounts live on one shard).
func MatchAccount(u ClinikoUser, clinic map[string]ClinikoAccount) AccountMatch {
	if cur, ok := clinic[u.Shard]; ok && cur.Known() && u.Account.Known() {
		if cur.Same(u.Account) {
			return AccountSame
		}
		return AccountOther
	}
	switch u.ClinicProbe {
	case ProbeSees:
		return AccountSame
	case ProbeNotFound:
		return AccountOther
	}
	if _, ok := clinic[u.Shard]; !ok {
		for _, a := range clinic {
			if a.Known() {
				return AccountOther
			}
		}
	}
	return AccountUnknown
}

// ClaimClinikoAccount records acct as the Cliniko account a subscription's
// patients on acct's shard come from, unless another account is recorded
// (the first key saved or the first import of a clinic claims it). It
// returns the account now recorded and whether it is the Same as acct:
// false means acct belongs to another Cliniko account than the clinic's
// patients, and nothing changed. When it is the same account, the record
// takes acct's fresher list of businesses. acct must be Known (ErrInvalid
// otherwise); an unknown subscription is ErrNotFound.
func (s *Store) ClaimClinikoAccount(ctx context.Context, subID string, acct ClinikoAccount) (ClinikoAccount, bool, error) {
	if !acct.Known() || !validID(acct.Shard) {
		return ClinikoAccount{}, false, fmt.Errorf("cliniko account of %s: %w", subID, invalid("cliniko account", "a shard and at least one business are required"))
	}
	if _, err := s.GetSubscription(ctx, subID); err != nil {
		return ClinikoAccount{}, false, fmt.Errorf("cliniko account: %w", err)
	}
	key := s.subClinikoKey(subID)
	var inForce ClinikoAccount
	var same bool
	err := watchRetry(ctx, s.rdb, key, func(tx *redis.Tx) error {
		b, err := tx.HGet(ctx, key, acct.Shard).Bytes()
		var cur ClinikoAccount
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			if err := jsonUnmarshal(b, &cur); err != nil {
				return err
			}
		}
		if cur.Known() && !cur.Same(acct) {
			inForce, same = cur, false
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, acct.Shard, mustJSON(acct))
			return nil
		})
		if err == nil {
			inForce, same = acct, true
		}
		return err
	})
	if err != nil {
		return ClinikoAccount{}, false, fmt.Errorf("cliniko account of %s/%s: %w", subID, acct.Shard, err)
	}
	return inForce, same, nil
}

// AccountCheck is what a saved key's Cliniko account means for its
// subscription (AdoptClinikoAccount).
type AccountCheck struct {
	// Account is the Cliniko account the subscription's patients on the
	// key's shard come from, after the save.
	Account ClinikoAccount
	// Same: the key belongs to that account. False for a known key
	// account: the key belongs to another Cliniko account than the
	// clinic's patients (warn; nothing was recorded).
	Same bool
	// TimeZoneFilled: the subscription's time zone was not set and was
	// taken from the account's businesses.
	TimeZoneFilled bool
}

// AdoptClinikoAccount does what saving a key of account acct tells the
// subscription: acct claims the shard (ClaimClinikoAccount), and when it is
// the subscription's account and its businesses share one time zone, that
// zone fills the subscription's unless one is set
// (FillSubscriptionTimeZone). Another clinic's key changes nothing. An
// unknown acct (the businesses could not be read) records nothing and
// gives the zero AccountCheck.
func (s *Store) AdoptClinikoAccount(ctx context.Context, subID string, acct ClinikoAccount) (AccountCheck, error) {
	if !acct.Known() {
		return AccountCheck{}, nil
	}
	inForce, same, err := s.ClaimClinikoAccount(ctx, subID, acct)
	if err != nil {
		return AccountCheck{}, err
	}
	check := AccountCheck{Account: inForce, Same: same}
	if tz := acct.TimeZone(); same && tz != "" {
		if _, check.TimeZoneFilled, err = s.FillSubscriptionTimeZone(ctx, subID, tz); err != nil {
			return check, err
		}
	}
	return check, nil
}
