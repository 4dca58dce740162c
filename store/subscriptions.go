package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/redis/go-redis/v9"
)

// Subscription is a clinic's account; practitioners and patients belong to
// exactly one.
type Subscription struct {
	ID   string `json:"id"` // "sub_…"
	Name string `json:"name"`
	// TimeZone is the clinic's IANA time zone: every time shown to its
	// practitioners and patients is in it (pmsbridge.LoadClinicTime).
	// Always set: Options.DefaultTimeZone unless chosen or filled from
	// Cliniko (see clinictime.go in this package).
	TimeZone string `json:"time_zone"`
	// TimeZoneSource says where TimeZone came from.
	TimeZoneSource TimeZoneSource `json:"time_zone_source"`
	CreatedAt      time.Time      `json:"created_at"`
}

// Sharing holds a subscription's sharing groups. Members of Patients see
// each other's patients while the owner is active (see CanOpen); Content is
// kept for the platform's content sharing and has no effect here.
type Sharing struct {
	SubscriptionID string   `json:"subscription_id"`
	Patients       []string `json:"patients"` // practitioner ids, sorted
	Content        []string `json:"content"`  // practitioner ids, sorted
}

// CreateSubscription creates a subscription named name, in the region's
// time zone (Options.DefaultTimeZone) unless WithTimeZone says otherwise.
// Every problem is reported at once (ErrInvalid) and nothing is created.
func (s *Store) CreateSubscription(ctx context.Context, name string, opts ...SubscriptionOption) (Subscription, error) {
	var o subscriptionOptions
	for _, f := range opts {
		f(&o)
	}
	name = strings.TrimSpace(name)
	var problems []string
	if name == "" || len(name) > 200 {
		problems = append(problems, "name must be 1 to 200 characters")
	}
	sub := Subscription{ID: newID("sub"), Name: name, CreatedAt: s.now(),
		TimeZone: s.opts.DefaultTimeZone, TimeZoneSource: TimeZoneDefault}
	if o.timeZone != "" {
		if _, err := pmsbridge.LoadTimeZone(o.timeZone); err != nil {
			problems = append(problems, timeZoneProblem(o.timeZone))
		}
		sub.TimeZone, sub.TimeZoneSource = o.timeZone, TimeZoneChosen
	}
	if len(problems) > 0 {
		return Subscription{}, fmt.Errorf("create subscription: %w", invalid("subscription", problems...))
	}
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, s.key("sub", sub.ID), mustJSON(sub), 0)
	pipe.ZAdd(ctx, s.key("subs"), redis.Z{Score: float64(sub.CreatedAt.UnixMilli()), Member: sub.ID})
	if _, err := pipe.Exec(ctx); err != nil {
		return Subscription{}, fmt.Errorf("create subscription: %w", err)
	}
	return sub, nil
}

// GetSubscription returns subscription id.
func (s *Store) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var sub Subscription
	if !validID(id) {
		return sub, fmt.Errorf("get subscription %q: %w", id, ErrNotFound)
	}
	if err := getJSON(ctx, s.rdb, s.key("sub", id), &sub); err != nil {
		return sub, fmt.Errorf("get subscription %s: %w", id, err)
	}
	return s.withTimeZone(sub), nil
}

// ListSubscriptions returns every subscription, oldest first (ties by id).
func (s *Store) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	ids, err := s.rdb.ZRange(ctx, s.key("subs"), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	subs, err := s.subscriptionsOf(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return subs, nil
}

// subscriptionsOf reads the subscriptions ids with one pipeline (getMany:
// those missing are skipped), each as GetSubscription returns it
// (withTimeZone).
func (s *Store) subscriptionsOf(ctx context.Context, ids []string) ([]Subscription, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key("sub", id)
	}
	subs, err := getMany[Subscription](ctx, s.rdb, keys)
	if err != nil {
		return nil, err
	}
	for i := range subs {
		subs[i] = s.withTimeZone(subs[i])
	}
	return subs, nil
}

// SetSharing replaces the sharing groups of subscription subID. Every id
// must be a practitioner of that subscription; otherwise nothing changes and
// the error (ErrInvalid) lists the ids that are not.
func (s *Store) SetSharing(ctx context.Context, subID string, patients, content []string) (Sharing, error) {
	if _, err := s.GetSubscription(ctx, subID); err != nil {
		return Sharing{}, fmt.Errorf("set sharing: %w", err)
	}
	sh := Sharing{SubscriptionID: subID, Patients: sortedUnique(patients), Content: sortedUnique(content)}
	members, err := s.rdb.SMembers(ctx, s.key("sub", subID, "pracs")).Result()
	if err != nil {
		return Sharing{}, fmt.Errorf("set sharing %s: %w", subID, err)
	}
	var bad []string
	for _, id := range sortedUnique(append(slices.Clone(sh.Patients), sh.Content...)) {
		if !slices.Contains(members, id) {
			bad = append(bad, id)
		}
	}
	if len(bad) > 0 {
		return Sharing{}, fmt.Errorf("set sharing %s: %w", subID,
			invalid("sharing", "not practitioners of this subscription: "+strings.Join(bad, ", ")))
	}
	if err := s.rdb.Set(ctx, s.key("sub", subID, "sharing"), mustJSON(sh), 0).Err(); err != nil {
		return Sharing{}, fmt.Errorf("set sharing %s: %w", subID, err)
	}
	return sh, nil
}

// GetSharing returns the sharing groups of subscription subID (empty groups
// when none were set).
func (s *Store) GetSharing(ctx context.Context, subID string) (Sharing, error) {
	if !validID(subID) {
		return Sharing{}, fmt.Errorf("get sharing %q: %w", subID, ErrNotFound)
	}
	pipe := s.rdb.Pipeline()
	exists := pipe.Exists(ctx, s.key("sub", subID))
	get := pipe.Get(ctx, s.key("sub", subID, "sharing"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Sharing{}, fmt.Errorf("get sharing %s: %w", subID, err)
	}
	if exists.Val() == 0 {
		return Sharing{}, fmt.Errorf("get sharing %s: %w", subID, ErrNotFound)
	}
	return decodeSharing(subID, get)
}

func decodeSharing(subID string, get *redis.StringCmd) (Sharing, error) {
	sh := Sharing{SubscriptionID: subID, Patients: []string{}, Content: []string{}}
	b, err := get.Bytes()
	if errors.Is(err, redis.Nil) {
		return sh, nil
	}
	if err == nil {
		err = jsonUnmarshal(b, &sh)
	}
	if err != nil {
		return Sharing{}, fmt.Errorf("sharing of %s: %w", subID, err)
	}
	return sh, nil
}

// SetSyncCursor records when the periodic sync last pulled the changed
// patients of subscription subID on a Cliniko shard.
func (s *Store) SetSyncCursor(ctx context.Context, subID, shard string, at time.Time) error {
	if !validID(subID) || !validID(shard) {
		return fmt.Errorf("set sync cursor: %w", invalid("sync cursor", "bad subscription or shard"))
	}
	if err := s.rdb.Set(ctx, s.key("sub", subID, "sync", shard), at.UTC().Format(time.RFC3339Nano), 0).Err(); err != nil {
		return fmt.Errorf("set sync cursor %s/%s: %w", subID, shard, err)
	}
	return nil
}

// SyncCursor returns the time set by SetSyncCursor; ok is false when the
// subscription was never synced on that shard.
func (s *Store) SyncCursor(ctx context.Context, subID, shard string) (at time.Time, ok bool, err error) {
	if !validID(subID) || !validID(shard) {
		return time.Time{}, false, nil
	}
	v, err := s.rdb.Get(ctx, s.key("sub", subID, "sync", shard)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err == nil {
		at, err = time.Parse(time.RFC3339Nano, v)
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sync cursor %s/%s: %w", subID, shard, err)
	}
	return at, true, nil
}

// SubscriptionsByID returns the subscriptions among ids that exist, by id,
// with one Redis round trip.
func (s *Store) SubscriptionsByID(ctx context.Context, ids []string) (map[string]Subscription, error) {
	ids = slices.DeleteFunc(sortedUnique(ids), func(id string) bool { return !validID(id) })
	subs, err := s.subscriptionsOf(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("subscriptions by id: %w", err)
	}
	out := make(map[string]Subscription, len(subs))
	for _, sub := range subs {
		out[sub.ID] = sub
	}
	return out, nil
}
