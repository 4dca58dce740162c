package app_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/internal/cli"
	"github.com/physitrack/pmsbridge/store"
)

// TestSubscriptionTimeZoneAdmin: the admin API and `pmsbridge admin` take
// a clinic's time zone (an IANA name), default the region's, and refuse a
// bad one with a clear error, creating nothing.
func TestSubscriptionTimeZoneAdmin(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	count := func() int {
		subs, err := e.Store.ListSubscriptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(subs)
	}

	created := []struct {
		desc, body, wantZone string
		wantSource           store.TimeZoneSource
	}{
		{"given", `{"name":"Kiwi Physio","time_zone":"Pacific/Auckland"}`, "Pacific/Auckland", store.TimeZoneChosen},
		{"left out: the region's (au)", `{"name":"Bondi Physio"}`, "Australia/Sydney", store.TimeZoneDefault},
		{"empty: the region's", `{"name":"Manly Physio","time_zone":""}`, "Australia/Sydney", store.TimeZoneDefault},
	}
	for _, tc := range created {
		t.Run(tc.desc, func(t *testing.T) {
			status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/subscriptions", tc.body)
			id, _ := doc["id"].(string)
			if status != http.StatusCreated || doc["time_zone"] != tc.wantZone || len(doc) != 3 || !strings.HasPrefix(id, "sub_") {
				t.Fatalf("create: %d %v, want 201 {id, name, time_zone: %s}", status, doc, tc.wantZone)
			}
			sub, err := e.Store.GetSubscription(ctx, id)
			if err != nil || sub.TimeZone != tc.wantZone || sub.TimeZoneSource != tc.wantSource {
				t.Errorf("stored %+v (%v)", sub, err)
			}
		})
	}
	before := count()
	for _, tc := range []struct{ desc, body string }{
		{"a Cliniko label, not IANA", `{"name":"X","time_zone":"Sydney"}`},
		{"the server's zone", `{"name":"X","time_zone":"Local"}`},
		{"unknown", `{"name":"X","time_zone":"Pacific/Atlantis"}`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/subscriptions", tc.body)
			wantAPIError(t, status, doc, http.StatusUnprocessableEntity, "time_zone", "IANA")
		})
	}
	status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/subscriptions", `{"name":"X","time_zone":10}`)
	wantAPIError(t, status, doc, http.StatusBadRequest, "JSON")
	if n := count(); n != before {
		t.Errorf("%d subscriptions after bad requests, want %d", n, before)
	}

	c := newAdminCLI(t, e)
	var sub map[string]string
	c.okJSON(&sub, nil, "subscription", "create", "--name", "Maple Rehab", "--time-zone", "America/Toronto")
	if sub["time_zone"] != "America/Toronto" {
		t.Errorf("CLI create --time-zone: %v", sub)
	}
	out := c.ok(nil, "subscription", "create", "--name", "Harbour Physio")
	if !strings.Contains(out, "time zone Australia/Sydney") {
		t.Errorf("CLI create without --time-zone: %q", out)
	}
	if out := c.ok(nil, "subscription", "list"); !strings.Contains(out, "TIME ZONE") || !strings.Contains(out, "America/Toronto") || !strings.Contains(out, "Pacific/Auckland") {
		t.Errorf("subscription list:\n%s", out)
	}
	before = count()
	code, out, errOut := c.run("", nil, "subscription", "create", "--name", "Bad Zone", "--time-zone", "EST5EDT-ish")
	if code != cli.ExitUsage || !strings.Contains(errOut, "time_zone") || out != "" {
		t.Errorf("CLI bad --time-zone: exit %d, stdout %q, stderr %q; want exit 2 naming time_zone", code, out, errOut)
	}
	if n := count(); n != before {
		t.Errorf("a bad --time-zone created a subscription")
	}
}

// TestKeySaveRecordsClinikoAccount: saving a key on the settings page reads
// the key's Cliniko account (GET /businesses); the first key claims the
// subscription's account on its shard and fills the clinic's time zone
// from Cliniko; another clinic's key is told apart and changes neither;
// a key whose businesses cannot be read is still saved.
func TestKeySaveRecordsClinikoAccount(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	other := e.Sandbox.AddAccount("au1", "Kiwi Physio", sandbox.Business{BusinessName: "Kiwi Physio",
		CountryCode: "NZ", TimeZoneIdentifier: "Pacific/Auckland"})
	_, otherKey := other.AddUser("Kiri", "Ngata", "kiri@kiwi.example", sandbox.RolePractitioner)
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"a@clinic.example": "", "b@clinic.example": "", "c@clinic.example": ""})
	subID := clinic.Subscription.ID
	if clinic.Subscription.TimeZoneSet() {
		t.Fatalf("new subscription: %+v, want the region's zone, not set", clinic.Subscription)
	}
	save := func(email, key string) store.ClinikoUser {
		t.Helper()
		r := e.Login(email).PostForm("/settings/cliniko", url.Values{"api_key": {key}})
		wantRedirect(t, "save "+email, r, "/settings/cliniko?done=saved&replayed=0")
		u, ok, err := e.Store.ClinikoUserOf(ctx, clinic.Practitioners[email].ID)
		if err != nil || !ok {
			t.Fatalf("saved user of %s: %v %v", email, ok, err)
		}
		return u
	}
	accountID := func() string {
		a, _, err := e.Store.SubscriptionClinikoAccount(ctx, subID, "au1")
		if err != nil {
			t.Fatal(err)
		}
		return a.ID()
	}
	zone := func() string {
		sub, err := e.Store.GetSubscription(ctx, subID)
		if err != nil {
			t.Fatal(err)
		}
		return sub.TimeZone + " " + string(sub.TimeZoneSource)
	}

	// Another clinic's key saved first would claim the account: the page
	// engineer's warning relies on the first key being the clinic's own.
	u := save("a@clinic.example", sandbox.DemoPractitionerKey)
	want := store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: sandbox.DemoBusinessID, Name: "Demo Physio Clinic",
		CountryCode: "AU", TimeZone: "Australia/Sydney"}}, u.Account.CheckedAt)
	if diff := cmp.Diff(want, u.Account); diff != "" || u.Account.CheckedAt.IsZero() {
		t.Errorf("saved account (-want +got):\n%s", diff)
	}
	if got := []string{accountID(), zone()}; !cmp.Equal(got, []string{"au1:" + sandbox.DemoBusinessID, "Australia/Sydney cliniko"}) {
		t.Errorf("after the clinic's key: [account zone] = %v", got)
	}

	u = save("b@clinic.example", otherKey)
	if u.Account.ID() != "au1:"+other.Businesses()[0].ID || u.Account.Same(want) {
		t.Errorf("other clinic's key: account %q", u.Account.ID())
	}
	if got := []string{accountID(), zone()}; !cmp.Equal(got, []string{"au1:" + sandbox.DemoBusinessID, "Australia/Sydney cliniko"}) {
		t.Errorf("after another clinic's key: [account zone] = %v, want unchanged", got)
	}

	e.Sandbox.FailNextOp("list_businesses", 3, http.StatusServiceUnavailable)
	u = save("c@clinic.example", sandbox.DemoAdminKey)
	if u.Account.Known() || u.ID != sandbox.DemoAdminUserID {
		t.Errorf("businesses unreadable: saved %+v, want the user without an account", u)
	}
	if accountID() != "au1:"+sandbox.DemoBusinessID {
		t.Errorf("an unreadable account changed the subscription's: %q", accountID())
	}
}

// TestChosenTimeZoneKeptOnKeySave: a zone chosen by support is not
// replaced by Cliniko's.
func TestChosenTimeZoneKeptOnKeySave(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"a@clinic.example": ""})
	if _, err := e.Store.SetSubscriptionTimeZone(ctx, clinic.Subscription.ID, "Australia/Perth"); err != nil {
		t.Fatal(err)
	}
	r := e.Login("a@clinic.example").PostForm("/settings/cliniko", url.Values{"api_key": {sandbox.DemoAdminKey}})
	wantRedirect(t, "save", r, "/settings/cliniko?done=saved&replayed=0")
	sub, err := e.Store.GetSubscription(ctx, clinic.Subscription.ID)
	if err != nil || sub.TimeZone != "Australia/Perth" || sub.TimeZoneSource != store.TimeZoneChosen {
		t.Errorf("after the key save: %+v (%v), want the chosen Australia/Perth", sub, err)
	}
	if a, ok, _ := e.Store.SubscriptionClinikoAccount(ctx, clinic.Subscription.ID, "au1"); !ok || a.ID() != "au1:"+sandbox.DemoBusinessID {
		t.Errorf("the key's account was not recorded: %v %q", ok, a.ID())
	}
}
