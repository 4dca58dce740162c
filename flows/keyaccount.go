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
// subscription (the first key claims it; the time zone is filled from it
// when none is set) and returns what it means: Same false for a known
// account is another Cliniko account than the clinic's patients. A key on
// another shard than the one the clinic's patients are on claims nothing:
// only an import (which proves patients come from it) does then.
func (f *Flows) adoptKeyAccount(ctx context.Context, subID string, acct store.ClinikoAccount) store.AccountCheck {
	clinic, err := f.Store.SubscriptionClinikoAccounts(ctx, subID)
	if err != nil {
		f.logger(ctx).Warn("read the clinic's cliniko accounts", "err", err)
		return store.AccountCheck{}
	}
	if _, ok := clinic[acct.Shard]; !ok && len(clinic) > 0 {
		return store.AccountCheck{}
	}
	check, err := f.Store.AdoptClinikoAccount(ctx, subID, acct)
	if err != nil {
		f.logger(ctx).Warn("record cliniko account", "err", err)
	}
	return check
}

// probeClinic reads one of the clinic's linked patients on the key's shard
// with the new key (one request), when the key's account cannot be
// compared with the clinic's patients' (either could not be read, or none
// was recorded though patients are linked): Cliniko shows the patient
// only to keys of its account. "" when there is nothing to probe or the
// answer says nothing (an error other than not found).
func (f *Flows) probeClinic(ctx context.Context, subID string, a cliniko.Auth, cu store.ClinikoUser) store.Probe {
	clinic, err := f.Store.SubscriptionClinikoAccounts(ctx, subID)
	if err != nil {
		f.logger(ctx).Warn("read the clinic's cliniko accounts", "err", err)
		return ""
	}
	if cur, ok := clinic[cu.Shard]; ok && cur.Known() && cu.Account.Known() {
		return "" // compared by their businesses
	}
	cid, ok, err := f.Store.SampleLinkedPatient(ctx, subID, cu.Shard)
	if err != nil {
		f.logger(ctx).Warn("pick a linked patient to check the key with", "err", err)
	}
	if !ok {
		return ""
	}
	_, err = f.Cliniko.GetPatient(ctx, a, cid)
	switch {
	case err == nil:
		return store.ProbeSees
	case pmsbridge.CauseOf(err) == pmsbridge.CauseClinikoNotFound:
		return store.ProbeNotFound
	}
	return ""
}

// Region is one of the platform's regional deployments.
type Region struct {
	Code string // "au"
	Name string // "Australia"
	URL  string // its public address, "https://au.physitrack.com"
}

// countryRegions maps a Cliniko business's country (ISO 3166-1 alpha-2) to
// the region whose deployment keeps its clinic's data.
var countryRegions = map[string]string{"AU": "au", "NZ": "nz", "CA": "ca", "IE": "ie", "GB": "uk", "UK": "uk", "US": "us"}

// shardRegions maps a Cliniko shard's letters to a region where they say
// the country (au shards serve New Zealand clinics too, so they say none).
var shardRegions = map[string]string{"uk": "uk", "ca": "ca"}

// residencyOf is the region that a Cliniko account's data belongs in, by its
// businesses' countries (any of them in this deployment's region keeps it
// here), else by its shard; "" when nothing says.
func (f *Flows) residencyOf(u store.ClinikoUser) string {
	first := ""
	for _, c := range u.Account.Countries() {
		r := countryRegions[c]
		if r == f.Region {
			return r
		}
		if first == "" {
			first = r
		}
	}
	if first != "" || len(u.Account.Countries()) > 0 {
		return first
	}
	if len(u.Shard) >= 2 {
		return shardRegions[u.Shard[:2]]
	}
	return ""
}

// KeyStatus is what the Cliniko settings page says about a practitioner's
// saved key.
type KeyStatus struct {
	Saved bool
	User  store.ClinikoUser
	// CanUpload: the key's Cliniko role may upload patient files (PDFs).
	CanUpload bool
	// Match says whether the key belongs to the Cliniko account the
	// clinic's patients come from; ClinicAccount is that account (the zero
	// value when none is recorded).
	Match         store.AccountMatch
	ClinicAccount store.ClinikoAccount
	// NotYou: the Cliniko user has neither the practitioner's email
	// address nor their name. OtherEmail: the name is theirs, the email
	// address is not (likely the same person with another address).
	NotYou, OtherEmail bool
	// Residency is the region the key's clinic belongs to when it is not
	// this deployment's (data residency: the clinic should use that
	// address); nil otherwise.
	Residency *Region
	// Here is this deployment's region.
	Here Region
}

// KeyStatus reads what the settings page says about pr's saved key, of
// Cliniko user saved (as the request's session read it; nil: no key):
// whose and which account it is, and what is wrong with it for this
// clinic and this region. It asks Cliniko nothing.
func (f *Flows) KeyStatus(ctx context.Context, pr store.Practitioner, saved *store.ClinikoUser) (KeyStatus, error) {
	st := KeyStatus{Here: f.region(f.Region)}
	if saved == nil {
		return st, nil
	}
	cu := *saved
	st.Saved, st.User, st.CanUpload = true, cu, cliniko.CanUpload(cu.Role)
	clinic, err := f.Store.SubscriptionClinikoAccounts(ctx, pr.SubscriptionID)
	if err != nil {
		return st, err
	}
	st.Match = store.MatchAccount(cu, clinic)
	if a, ok := clinic[cu.Shard]; ok {
		st.ClinicAccount = a
	} else {
		for _, a := range clinic {
			if a.Known() {
				st.ClinicAccount = a
				break
			}
		}
	}
	sameEmail := cu.Email != "" && equalFold(cu.Email, pr.Email)
	sameName := SameName(cu.Name, pr.Name)
	st.NotYou = !sameEmail && !sameName
	st.OtherEmail = !sameEmail && sameName && cu.Email != ""
	if r := f.residencyOf(cu); r != "" && r != f.Region {
		reg := f.region(r)
		st.Residency = &reg
	}
	return st, nil
}

// region is the deployment of region code (its code alone when unknown).
func (f *Flows) region(code string) Region {
	for _, r := range f.Regions {
		if r.Code == code {
			return r
		}
	}
	return Region{Code: code, Name: code}
}

// AccountError is a failure with cliniko_not_found (an import, a read)
// with what is known of the key's Cliniko account: whether it is the
// clinic's (the patient was then archived or deleted in Cliniko) or
// another (the key is of another clinic), so the page leads with the right
// explanation. It carries the cause of the error it wraps.
type AccountError struct {
	Err    error
	Match  store.AccountMatch
	Key    store.ClinikoAccount // the key's account
	Clinic store.ClinikoAccount // the account of the clinic's patients
}

func (e *AccountError) Error() string { return e.Err.Error() }
func (e *AccountError) Unwrap() error { return e.Err }

// explainNotFound wraps err in an *AccountError when it is
// cliniko_not_found and whether the key (of Cliniko user cu) belongs to
// the clinic's account is known; otherwise it returns err.
func (f *Flows) explainNotFound(ctx context.Context, subID string, cu *store.ClinikoUser, err error) error {
	if cu == nil || pmsbridge.CauseOf(err) != pmsbridge.CauseClinikoNotFound {
		return err
	}
	clinic, cerr := f.Store.SubscriptionClinikoAccounts(ctx, subID)
	if cerr != nil {
		f.logger(ctx).Warn("read the clinic's cliniko accounts", "err", cerr)
		return err
	}
	m := store.MatchAccount(*cu, clinic)
	if m == store.AccountUnknown {
		return err
	}
	e := &AccountError{Err: err, Match: m, Key: cu.Account, Clinic: clinic[cu.Shard]}
	if !e.Clinic.Known() {
		for _, a := range clinic {
			if a.Known() {
				e.Clinic = a
				break
			}
		}
	}
	return e
}

// OtherAccount: the key belongs to another Cliniko account than the
// clinic's patients.
func (s KeyStatus) OtherAccount() bool { return s.Match == store.AccountOther }
