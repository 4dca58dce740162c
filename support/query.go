// Package support is what support staff see of failed jobs, the same in
// the CLI (`pmsbridge jobs`), the admin API and the admin pages: filters as
// people type them (a practitioner by email or id, a clinic by id or
// name), rows that name people instead of ids, a job's history, replays
// that say how many jobs and where, and the chart of failures per hour.
//
// It reads the store and the jobs package and writes nothing itself.
package support

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/jobs"
	"github.com/physitrack/pmsbridge/store"
)

// Query is a listing's filters as people type them: CLI flags or the admin
// API's query parameters. Empty fields match everything.
type Query struct {
	Cause string
	Type  string
	// Clinic is a subscription id or a subscription's exact name.
	Clinic string
	// Practitioner is a practitioner's email or id.
	Practitioner string
	// Since is a time (RFC 3339) or a duration ago ("24h").
	Since string
	// Search keeps the jobs whose id, type, cause, reason, clinic,
	// practitioner, patient (name only with the encryption key) or Cliniko
	// user contains it, in any case.
	Search string
	// All includes jobs still being retried (after 3 attempts).
	All bool
}

// QueryError is a filter that cannot be used: an unknown cause or type, an
// email or a clinic that matches nobody. Its message says what to give
// instead. Nothing was read or changed.
type QueryError struct{ msg string }

func (e *QueryError) Error() string { return e.msg }

func queryErrorf(format string, args ...any) error { return &QueryError{fmt.Sprintf(format, args...)} }

// Filter is a resolved Query: the store's filter, with the clinic and the
// practitioner it names.
type Filter struct {
	store.FailureFilter
	Clinic       *store.Subscription
	Practitioner *store.Practitioner
	// Search is Query.Search, trimmed.
	Search string
}

// SelectRecovered returns the rows of the recently recovered jobs that f
// selects (its Since: recovered since), newest first.
func SelectRecovered(ctx context.Context, st *store.Store, f Filter) ([]Job, error) {
	list, err := st.ListRecovered(ctx, f.FailureFilter)
	if err != nil {
		return nil, err
	}
	rows, err := RecoveredRows(ctx, st, list)
	if err != nil || f.Search == "" {
		return rows, err
	}
	kept := []Job{}
	for _, r := range rows {
		if r.matches(f.Search) {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// Select returns the ledger entries f selects, newest first, and their
// rows (the same order): what a listing shows and what a bulk replay by
// the same filter runs.
func Select(ctx context.Context, st *store.Store, f Filter) ([]store.Failure, []Job, error) {
	list, err := st.ListFailures(ctx, f.FailureFilter)
	if err != nil {
		return nil, nil, err
	}
	rows, err := Rows(ctx, st, list)
	if err != nil {
		return nil, nil, err
	}
	if f.Search == "" {
		return list, rows, nil
	}
	var keptList []store.Failure
	kept := []Job{}
	for i, r := range rows {
		if r.matches(f.Search) {
			keptList, kept = append(keptList, list[i]), append(kept, r)
		}
	}
	return keptList, kept, nil
}

// Resolve checks q and looks up the clinic and the practitioner it names.
// A bad value is a *QueryError; other errors are the store's.
func (q Query) Resolve(ctx context.Context, st *store.Store, now time.Time) (Filter, error) {
	f := Filter{FailureFilter: store.FailureFilter{Type: strings.TrimSpace(q.Type), Cause: pmsbridge.Cause(strings.TrimSpace(q.Cause)), PermanentOnly: !q.All},
		Search: strings.TrimSpace(q.Search)}
	if len([]rune(f.Search)) > 200 {
		return f, queryErrorf("search is too long: at most 200 characters")
	}
	if f.Cause != "" && !f.Cause.Valid() {
		return f, queryErrorf("unknown cause %q; causes are: %s", f.Cause, CauseList())
	}
	if f.Type != "" && !slices.Contains(jobs.TaskTypes(), f.Type) {
		return f, queryErrorf("unknown job type %q; types are: %s", f.Type, strings.Join(jobs.TaskTypes(), ", "))
	}
	if s := strings.TrimSpace(q.Since); s != "" {
		since, err := ParseSince(s, now)
		if err != nil {
			return f, err
		}
		f.Since = since
	}
	if p := strings.TrimSpace(q.Practitioner); p != "" {
		pr, err := findPractitioner(ctx, st, p)
		if err != nil {
			return f, err
		}
		f.Practitioner, f.PractitionerID = &pr, pr.ID
	}
	if c := strings.TrimSpace(q.Clinic); c != "" {
		sub, err := findClinic(ctx, st, c)
		if err != nil {
			return f, err
		}
		f.Clinic, f.SubscriptionID = &sub, sub.ID
	}
	return f, nil
}

// ParseSince reads a time (RFC 3339) or a duration before now.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, queryErrorf("since %q: give a time like 2026-11-22T10:00:00Z or a duration like 24h", s)
	}
	return now.Add(-d), nil
}

func findPractitioner(ctx context.Context, st *store.Store, s string) (store.Practitioner, error) {
	if strings.Contains(s, "@") {
		pr, err := st.PractitionerByEmail(ctx, s)
		if errors.Is(err, store.ErrNotFound) {
			return pr, queryErrorf("no practitioner has the email %q", s)
		}
		return pr, err
	}
	pr, err := st.GetPractitioner(ctx, s)
	if errors.Is(err, store.ErrNotFound) {
		return pr, queryErrorf("no practitioner %q: give a practitioner's email or id", s)
	}
	return pr, err
}

// findClinic finds a subscription by id, else by its exact name (any case
// when no name matches exactly). Two clinics of that name are an error
// that lists their ids.
func findClinic(ctx context.Context, st *store.Store, s string) (store.Subscription, error) {
	sub, err := st.GetSubscription(ctx, s)
	if err == nil {
		return sub, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return sub, err
	}
	subs, err := st.ListSubscriptions(ctx)
	if err != nil {
		return sub, err
	}
	for _, equal := range []func(a, b string) bool{func(a, b string) bool { return a == b }, strings.EqualFold} {
		var found []store.Subscription
		for _, x := range subs {
			if equal(x.Name, s) {
				found = append(found, x)
			}
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], nil
		default:
			ids := make([]string, len(found))
			for i, x := range found {
				ids[i] = x.ID
			}
			return sub, queryErrorf("%d clinics are named %q: give one of their ids (%s)", len(found), s, strings.Join(ids, ", "))
		}
	}
	return sub, queryErrorf("no clinic %q: give a subscription id or a clinic's exact name", s)
}

// CauseList names every cause, for messages and help.
func CauseList() string {
	s := make([]string, len(pmsbridge.Causes))
	for i, c := range pmsbridge.Causes {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}
