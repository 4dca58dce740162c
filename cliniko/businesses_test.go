package cliniko_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/cliniko"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
)

func TestListBusinesses(t *testing.T) {
	b := setup(t, cliniko.Config{})
	other := b.sb.AddAccount("au1", "Other Clinic on au1", sandbox.Business{BusinessName: "Kiwi Physio Ltd",
		DisplayName: "Kiwi Physio", CountryCode: "nz", TimeZone: "Auckland", TimeZoneIdentifier: "Pacific/Auckland"})
	otherBiz := other.Businesses()[0]
	_, otherKey := other.AddUser("Kiri", "Ngata", "kiri@kiwi.example", sandbox.RoleScheduler)
	legacy := b.sb.AddAccount("ca1", "No Advanced Zones", sandbox.Business{BusinessName: "Maple Rehab", CountryCode: "CA", TimeZone: "Eastern Time (US & Canada)"})
	_, legacyKey := legacy.AddUser("Lee", "Maple", "lee@maple.example", sandbox.RoleAdministrator)
	tests := []struct {
		desc string
		key  string
		want []cliniko.Business
	}{
		{desc: "demo account on au1", key: sandbox.DemoAdminKey, want: []cliniko.Business{{ID: sandbox.DemoBusinessID,
			BusinessName: "Demo Physio Clinic", DisplayName: "Demo Physio Clinic", CountryCode: "AU", TimeZone: "Sydney",
			TimeZoneIdentifier: "Australia/Sydney"}}},
		{desc: "uk2 account", key: sandbox.DemoUK2AdminKey, want: []cliniko.Business{{ID: sandbox.DemoUK2BusinessID,
			BusinessName: "Harbour Street Physiotherapy Ltd", DisplayName: "Harbour Street Physiotherapy", CountryCode: "GB",
			TimeZone: "London", TimeZoneIdentifier: "Europe/London"}}},
		{desc: "another account on the same shard sees only its own; a scheduler may read them", key: otherKey,
			want: []cliniko.Business{{ID: otherBiz.ID, BusinessName: "Kiwi Physio Ltd", DisplayName: "Kiwi Physio", CountryCode: "NZ",
				TimeZone: "Auckland", TimeZoneIdentifier: "Pacific/Auckland"}}},
		{desc: "no advanced time-zone support: no identifier", key: legacyKey, want: []cliniko.Business{{ID: legacy.Businesses()[0].ID,
			BusinessName: "Maple Rehab", DisplayName: "Maple Rehab", CountryCode: "CA", TimeZone: "Eastern Time (US & Canada)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := b.client.ListBusinesses(context.Background(), cliniko.Auth{Key: tt.key})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if n := (cliniko.Business{BusinessName: "Legal Name Pty Ltd"}).Name(); n != "Legal Name Pty Ltd" {
		t.Errorf("Name() without a display name = %q", n)
	}
}

// TestListBusinessesPaged: an account with more businesses than a page
// holds is read whole, one budgeted request per page.
func TestListBusinessesPaged(t *testing.T) {
	b := setup(t, cliniko.Config{})
	acct := b.sb.AddAccount("au2", "Franchise")
	for i := range 130 {
		acct.AddBusiness(sandbox.Business{BusinessName: fmt.Sprintf("Franchise %03d", i), CountryCode: "AU", TimeZoneIdentifier: "Australia/Perth"})
	}
	_, key := acct.AddUser("Fran", "Chise", "fran@franchise.example", sandbox.RoleReceptionist)
	got, err := b.client.ListBusinesses(context.Background(), cliniko.Auth{Key: key, UserID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := acct.Businesses()
	if len(got) != 131 || len(want) != 131 {
		t.Fatalf("got %d businesses, the account has %d, want 131", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID {
			t.Fatalf("business %d = %s, want %s (all, in id order)", i, got[i].ID, want[i].ID)
		}
	}
	if n := b.sb.RequestCount("list_businesses"); n != 2 {
		t.Errorf("requests = %d, want 2 pages of up to 100", n)
	}
	var paths []string
	for _, c := range b.Calls() {
		paths = append(paths, c.Op+" "+c.Method+" "+c.Path)
	}
	if diff := cmp.Diff([]string{"list_businesses GET /businesses", "list_businesses GET /businesses"}, paths); diff != "" {
		t.Errorf("observed calls (-want +got):\n%s", diff)
	}
}

func TestListBusinessesErrors(t *testing.T) {
	tests := []struct {
		desc         string
		arrange      func(*sandbox.Sandbox)
		key          string
		wantCause    pmsbridge.Cause
		wantRequests int
	}{
		{desc: "revoked key", arrange: func(sb *sandbox.Sandbox) { sb.RevokeKey(sandbox.DemoAdminKey) },
			key: sandbox.DemoAdminKey, wantCause: pmsbridge.CauseClinikoUnauthorized, wantRequests: 1},
		{desc: "bad shard: nothing sent", key: "MS0abc-zz9z", wantCause: pmsbridge.CauseClinikoUnauthorized},
		{desc: "5xx retried, then given up", arrange: func(sb *sandbox.Sandbox) { sb.FailNextOp("list_businesses", 3, 503) },
			key: sandbox.DemoAdminKey, wantCause: pmsbridge.CauseClinikoUnavailable, wantRequests: 3},
		{desc: "429 not retried", arrange: func(sb *sandbox.Sandbox) { sb.FailNextOp("list_businesses", 1, 429) },
			key: sandbox.DemoAdminKey, wantCause: pmsbridge.CauseClinikoRateLimited, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			b := setup(t, cliniko.Config{GetRetries: 2})
			if tt.arrange != nil {
				tt.arrange(b.sb)
			}
			got, err := b.client.ListBusinesses(context.Background(), cliniko.Auth{Key: tt.key})
			var e *cliniko.Error
			if !errors.As(err, &e) || got != nil {
				t.Fatalf("ListBusinesses = %v, %v; want no businesses and a *cliniko.Error", got, err)
			}
			if e.Op != "list_businesses" || pmsbridge.CauseOf(err) != tt.wantCause || b.sb.RequestCount("list_businesses") != tt.wantRequests {
				t.Errorf("op %q cause %q requests %d; want list_businesses %q %d", e.Op, pmsbridge.CauseOf(err),
					b.sb.RequestCount("list_businesses"), tt.wantCause, tt.wantRequests)
			}
		})
	}
}

// TestListBusinessesAfterRetry: a transient failure in the middle is
// retried and the list comes back whole.
func TestListBusinessesAfterRetry(t *testing.T) {
	b := setup(t, cliniko.Config{GetRetries: 2})
	b.sb.FailNextOp("list_businesses", 1, 502)
	got, err := b.client.ListBusinesses(context.Background(), b.admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != sandbox.DemoBusinessID {
		t.Errorf("got %+v, want the demo business", got)
	}
}
