package sandbox_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
)

// TestBusinessesAPI: GET /businesses and /businesses/{id} go through the
// same rules as every endpoint, list only the caller's account, and page.
func TestBusinessesAPI(t *testing.T) {
	sb := setup(t)
	au1 := sb.APIURL("au1")
	chain := sb.AddAccount("au1", "Chain", sandbox.Business{BusinessName: "Chain North", CountryCode: "AU", TimeZoneIdentifier: "Australia/Brisbane"},
		sandbox.Business{BusinessName: "Chain South", DisplayName: "Chain South Hobart", CountryCode: "AU", TimeZoneIdentifier: "Australia/Hobart"})
	_, chainKey := chain.AddUser("Cat", "Chain", "cat@chain.example", sandbox.RoleScheduler)

	type biz struct {
		ID           string  `json:"id"`
		BusinessName string  `json:"business_name"`
		DisplayName  string  `json:"display_name"`
		CountryCode  *string `json:"country_code"`
		TimeZone     *string `json:"time_zone"`
		TZID         *string `json:"time_zone_identifier"`
		Links        struct {
			Self string `json:"self"`
		} `json:"links"`
	}
	var page struct {
		Businesses   []biz `json:"businesses"`
		TotalEntries int   `json:"total_entries"`
		Links        struct {
			Next string `json:"next"`
		} `json:"links"`
	}
	a := call(t, "GET", au1+"/businesses?per_page=1", chainKey, ua, nil, "")
	if a.status != http.StatusOK {
		t.Fatalf("GET /businesses: %d %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, &page); err != nil {
		t.Fatal(err)
	}
	ids := chain.Businesses()
	if len(page.Businesses) != 1 || page.TotalEntries != 2 || page.Links.Next == "" || page.Businesses[0].ID != ids[0].ID {
		t.Fatalf("page 1 = %s", a.body)
	}
	b := page.Businesses[0]
	got := []any{b.BusinessName, b.DisplayName, *b.CountryCode, *b.TimeZone, *b.TZID, b.Links.Self}
	want := []any{"Chain North", "Chain North", "AU", "Brisbane", "Australia/Brisbane", au1 + "/businesses/" + ids[0].ID}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("first business [name display country label zone self] (-want +got):\n%s", diff)
	}
	a = call(t, "GET", page.Links.Next, chainKey, ua, nil, "")
	page.Businesses, page.Links.Next = nil, ""
	if err := json.Unmarshal(a.body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Businesses) != 1 || page.Businesses[0].ID != ids[1].ID || page.Businesses[0].DisplayName != "Chain South Hobart" || page.Links.Next != "" {
		t.Errorf("page 2 = %s", a.body)
	}

	tests := []struct {
		desc, url, key, ua string
		wantStatus         int
	}{
		{"no user agent", au1 + "/businesses", chainKey, "", 403},
		{"no key", au1 + "/businesses", "", ua, 401},
		{"key on another shard", sb.APIURL("uk2") + "/businesses", chainKey, ua, 401},
		{"own business by id", au1 + "/businesses/" + ids[1].ID, chainKey, ua, 200},
		{"another account's business by id", au1 + "/businesses/" + sandbox.DemoBusinessID, chainKey, ua, 404},
		{"not searchable", au1 + "/businesses?q[]=business_name:=x", chainKey, ua, 400},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := call(t, "GET", tt.url, tt.key, tt.ua, nil, ""); got.status != tt.wantStatus {
				t.Errorf("status %d, want %d (%s)", got.status, tt.wantStatus, got.body)
			}
		})
	}
	if n := sb.RequestCount("list_businesses"); n < 2 {
		t.Errorf("list_businesses counted %d requests", n)
	}
}

// TestAddAccountDefaultBusiness: an account made without businesses gets
// one in its shard's country and time zone; the demo accounts have theirs.
func TestAddAccountDefaultBusiness(t *testing.T) {
	sb := setup(t)
	tests := []struct{ shard, wantCountry, wantZone string }{
		{"au3", "AU", "Australia/Sydney"},
		{"ca1", "CA", "America/Toronto"},
		{"uk1", "GB", "Europe/London"},
		{"eu1", "IE", "Europe/Dublin"},
		{"xx1", "", "Etc/UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.shard, func(t *testing.T) {
			bs := sb.AddAccount(tt.shard, "Clinic "+tt.shard).Businesses()
			if len(bs) != 1 {
				t.Fatalf("%d businesses, want 1", len(bs))
			}
			got := []string{bs[0].BusinessName, bs[0].CountryCode, bs[0].TimeZoneIdentifier}
			if diff := cmp.Diff([]string{"Clinic " + tt.shard, tt.wantCountry, tt.wantZone}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	var zones []string
	for _, a := range sb.Accounts()[:2] {
		for _, b := range a.Businesses() {
			zones = append(zones, a.Name+": "+b.ID+" "+b.TimeZoneIdentifier)
		}
	}
	want := []string{"Demo Physio Clinic: " + sandbox.DemoBusinessID + " Australia/Sydney",
		"Harbour Street Physiotherapy: " + sandbox.DemoUK2BusinessID + " Europe/London"}
	if diff := cmp.Diff(want, zones); diff != "" {
		t.Errorf("demo businesses (-want +got):\n%s", diff)
	}
}

func TestEditBusiness(t *testing.T) {
	sb := setup(t)
	ok := sb.EditBusiness(sandbox.DemoBusinessID, func(b *sandbox.Business) {
		b.ID, b.TimeZoneIdentifier = "999", "Australia/Perth"
	})
	bs := sb.Accounts()[0].Businesses()
	if !ok || len(bs) != 1 || bs[0].ID != sandbox.DemoBusinessID || bs[0].TimeZoneIdentifier != "Australia/Perth" ||
		!bs[0].UpdatedAt.Equal(now.Truncate(time.Second)) {
		t.Errorf("after edit: %v %+v", ok, bs)
	}
	if sb.EditBusiness("404", func(*sandbox.Business) {}) {
		t.Error("EditBusiness of an unknown id reported true")
	}
}
