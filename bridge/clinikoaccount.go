package bridge

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
func (s *Server) keyAccount(ctx context.Context, a cliniko.Auth, shard string) store.ClinikoAccount {
	bs, err := s.deps.Cliniko.ListBusinesses(ctx, a)
	if err != nil {
		s.log.WarnContext(ctx, "read cliniko businesses", "request_id", requestID(ctx), "cause", pmsbridge.CauseOf(err))
		return store.ClinikoAccount{}
	}
	return ClinikoAccount(shard, bs, s.cfg.Now())
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
func (s *Server) adoptKeyAccount(ctx context.Context, subID string, acct store.ClinikoAccount) store.AccountCheck {
	check, err := s.deps.Store.AdoptClinikoAccount(ctx, subID, acct)
	if err != nil {
		s.log.WarnContext(ctx, "record cliniko account", "request_id", requestID(ctx), "err", err)
	}
	return check
}
