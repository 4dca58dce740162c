package store

import (
	"context"
	"fmt"

	"github.com/physitrack/pmsbridge"
)

// TimeZoneSource says where a subscription's time zone came from.
type TimeZoneSource string

// The sources of a subscription's time zone.
const (
	// TimeZoneDefault: the region's default (Options.DefaultTimeZone);
	// nobody has chosen one and Cliniko has not given one yet.
	TimeZoneDefault TimeZoneSource = "region"
	// TimeZoneChosen: set by a person (support through the admin API or
	// CLI, or the clinic) with SetSubscriptionTimeZone or at creation.
	TimeZoneChosen TimeZoneSource = "chosen"
	// TimeZoneFromCliniko: filled from the time zone of the clinic's Cliniko
	// businesses when a key of its account was saved
	// (FillSubscriptionTimeZone).
	TimeZoneFromCliniko TimeZoneSource = "cliniko"
)

// TimeZoneSet reports whether the subscription's time zone was chosen or
// taken from Cliniko rather than being the region's default. Cliniko's zone
// fills it only while it is not set.
func (sub Subscription) TimeZoneSet() bool { return sub.TimeZoneSource != TimeZoneDefault }

// ClinicTime is the formatter of every time and date the subscription's
// practitioners and patients see. A zone that no longer loads (a record
// edited by hand) falls back to UTC, which the formatter's Zone names.
func (sub Subscription) ClinicTime() pmsbridge.ClinicTime {
	c, err := pmsbridge.LoadClinicTime(sub.TimeZone)
	if err != nil {
		return pmsbridge.ClinicTime{}
	}
	return c
}

// SubscriptionOption changes how CreateSubscription makes a subscription.
type SubscriptionOption func(*subscriptionOptions)

type subscriptionOptions struct {
	timeZone string
}

// WithTimeZone gives a new subscription a time zone (an IANA name) instead
// of the region's default; "" keeps the default.
func WithTimeZone(name string) SubscriptionOption {
	return func(o *subscriptionOptions) { o.timeZone = name }
}

func timeZoneProblem(name string) string {
	return fmt.Sprintf("time_zone %q is not an IANA time zone (such as Australia/Sydney or Pacific/Auckland)", name)
}

// withTimeZone fills the time zone of a record stored before subscriptions
// had one.
func (s *Store) withTimeZone(sub Subscription) Subscription {
	if sub.TimeZone == "" {
		sub.TimeZone, sub.TimeZoneSource = s.opts.DefaultTimeZone, TimeZoneDefault
	}
	if sub.TimeZoneSource == "" {
		sub.TimeZoneSource = TimeZoneChosen
	}
	return sub
}

// SetSubscriptionTimeZone changes a subscription's time zone to name (an
// IANA name), as chosen by a person; "" goes back to the region's default
// (and lets Cliniko's fill it again). A bad name is ErrInvalid and changes
// nothing.
func (s *Store) SetSubscriptionTimeZone(ctx context.Context, subID, name string) (Subscription, error) {
	if name != "" {
		if _, err := pmsbridge.LoadTimeZone(name); err != nil {
			return Subscription{}, fmt.Errorf("set time zone of %s: %w", subID, invalid("subscription", timeZoneProblem(name)))
		}
	}
	if !validID(subID) {
		return Subscription{}, fmt.Errorf("set time zone of %q: %w", subID, ErrNotFound)
	}
	sub, err := updateJSON(ctx, s.rdb, s.key("sub", subID), func(sub *Subscription) error {
		if name == "" {
			sub.TimeZone, sub.TimeZoneSource = s.opts.DefaultTimeZone, TimeZoneDefault
		} else {
			sub.TimeZone, sub.TimeZoneSource = name, TimeZoneChosen
		}
		return nil
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("set time zone of %s: %w", subID, err)
	}
	return sub, nil
}

// FillSubscriptionTimeZone sets a subscription's time zone from Cliniko
// (the zone of the clinic's businesses, ClinikoAccount.TimeZone) only when
// none is set yet (TimeZoneSet false); changed reports whether it did. A
// bad name is ErrInvalid and changes nothing.
func (s *Store) FillSubscriptionTimeZone(ctx context.Context, subID, name string) (sub Subscription, changed bool, err error) {
	if _, err := pmsbridge.LoadTimeZone(name); err != nil {
		return Subscription{}, false, fmt.Errorf("fill time zone of %s: %w", subID, invalid("subscription", timeZoneProblem(name)))
	}
	if !validID(subID) {
		return Subscription{}, false, fmt.Errorf("fill time zone of %q: %w", subID, ErrNotFound)
	}
	sub, err = updateJSON(ctx, s.rdb, s.key("sub", subID), func(sub *Subscription) error {
		*sub = s.withTimeZone(*sub)
		changed = !sub.TimeZoneSet()
		if changed {
			sub.TimeZone, sub.TimeZoneSource = name, TimeZoneFromCliniko
		}
		return nil
	})
	if err != nil {
		return Subscription{}, false, fmt.Errorf("fill time zone of %s: %w", subID, err)
	}
	return sub, changed, nil
}
