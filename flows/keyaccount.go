package flows

import (
	"context"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/store"
)

// keyAccount reads which Cliniko account a working key belongs to
// (GET /businesses; a.UserID known). A key whose businesses cannot be read
// still works and is saved: its account is then unknown (logged, no key or
// patient detail in the log).
func (f *Flows) keyAccount(ctx context.Context, a cliniko.Auth, shard string) store.ClinikoAccount {
	bs, err := f.Cliniko.ListBusinesses(ctx, a)
	if err != nil {
		f.logger(ctx).Warn("read cliniko businesses", "cause", pmsbridge.CauseOf(err))
		return store.ClinikoAccount{}
	}
	return ClinikoAccount(shard, bs, f.Now())
}

// ClinikoAccount is the account of a key on shard whose GET /businesses
// returned bs at time at (the businesses' IANA zones, not Cliniko's
// labels).
func ClinikoAccount(shard string, bs []cliniko.Business, at time.Time) store.ClinikoAccount {
	out := make([]store.ClinikoBusiness, len(bs))
	for i, b := range bs {
		out[i] = store.ClinikoBusiness{ID: b.ID, Name: b.Name(), CountryCode: b.CountryCode, TimeZone: b.TimeZoneIdentifier}
	}
	return store.NewClinikoAccount(shard, out, at)
}

// adoptKeyAccount records a saved key's account for the practitioner's
// subscription (the first key of a shard claims it; the time zone is filled
// from it when none is set) and returns what it means: Same false for a
// known account is another Cliniko account than the clinic's patients.
func (f *Flows) adoptKeyAccount(ctx context.Context, subID string, acct store.ClinikoAccount) store.AccountCheck {
	check, err := f.Store.AdoptClinikoAccount(ctx, subID, acct)
	if err != nil {
		f.logger(ctx).Warn("record cliniko account", "err", err)
	}
	return check
}
