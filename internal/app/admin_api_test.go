package app_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/store"
)

// wantAPIError fails t unless the admin API answered status with a JSON
// {"error": "..."} that mentions every text.
func wantAPIError(t *testing.T, status int, doc map[string]any, wantStatus int, texts ...string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d (%v)", status, wantStatus, doc)
	}
	msg, _ := doc["error"].(string)
	if msg == "" {
		t.Fatalf("no JSON error message: %v", doc)
	}
	for _, s := range texts {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not mention %q", msg, s)
		}
	}
}

// TestAdminAPISubscriptionsAndPractitioners: creating subscriptions and
// practitioners, and every kind of bad input, which creates nothing.
func TestAdminAPISubscriptionsAndPractitioners(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()

	status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/subscriptions", map[string]string{"name": "City Physio"})
	if status != http.StatusCreated {
		t.Fatalf("create subscription: %d %v", status, doc)
	}
	subID, _ := doc["id"].(string)
	if !strings.HasPrefix(subID, "sub_") || doc["name"] != "City Physio" {
		t.Fatalf("create subscription: %v, want {id: sub_…, name: City Physio}", doc)
	}
	if sub, err := e.Store.GetSubscription(ctx, subID); err != nil || sub.Name != "City Physio" {
		t.Fatalf("stored subscription %+v (%v)", sub, err)
	}

	t.Run("bad subscriptions", func(t *testing.T) {
		for _, tc := range []struct {
			desc, body string
			status     int
			mention    string
		}{
			{"no body", "", http.StatusUnprocessableEntity, "name"},
			{"missing name", `{}`, http.StatusUnprocessableEntity, "name"},
			{"blank name", `{"name":"   "}`, http.StatusUnprocessableEntity, "name"},
			{"name too long", `{"name":"` + strings.Repeat("x", 201) + `"}`, http.StatusUnprocessableEntity, "name"},
			{"malformed JSON", `{"name":`, http.StatusBadRequest, "JSON"},
			{"unknown field", `{"name":"x","plan":"gold"}`, http.StatusBadRequest, "plan"},
			{"wrong type", `{"name":7}`, http.StatusBadRequest, "JSON"},
			{"two JSON values", `{"name":"Sneaky"} {"name":"Other"}`, http.StatusBadRequest, "JSON"},
			{"trailing garbage", `{"name":"Sneaky"}]`, http.StatusBadRequest, "JSON"},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/subscriptions", tc.body)
				wantAPIError(t, status, doc, tc.status, tc.mention)
			})
		}
		subs, err := e.Store.ListSubscriptions(ctx)
		if err != nil || len(subs) != 1 {
			t.Errorf("after bad requests there are %d subscriptions (%v), want 1", len(subs), err)
		}
	})

	const password = "a good long password"
	status, doc = callAdminAPI(t, e, http.MethodPost, "/admin/api/practitioners", map[string]string{
		"subscription_id": subID, "email": " Alice@City.Example ", "name": "Dr Alice", "password": password})
	if status != http.StatusCreated {
		t.Fatalf("create practitioner: %d %v", status, doc)
	}
	aliceID, _ := doc["id"].(string)
	want := map[string]any{"id": aliceID, "subscription_id": subID, "email": "alice@city.example", "name": "Dr Alice", "active": true}
	if !strings.HasPrefix(aliceID, "prac_") {
		t.Fatalf("practitioner id %q", aliceID)
	}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("create practitioner (-want +got):\n%s", diff)
	}
	if _, ok := doc["password"]; ok {
		t.Error("the answer contains the password")
	}
	alice := e.NewBrowser()
	wantRedirect(t, "the new practitioner logs in", alice.PostForm("/login", url.Values{"email": {"alice@city.example"}, "password": {password}}), "/patients")

	other, _ := e.Store.CreateSubscription(ctx, "Other Clinic")
	t.Run("bad practitioners", func(t *testing.T) {
		good := map[string]any{"subscription_id": subID, "email": "new@city.example", "name": "Dr New", "password": password}
		with := func(k string, v any) map[string]any {
			m := map[string]any{}
			for kk, vv := range good {
				m[kk] = vv
			}
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
			return m
		}
		for _, tc := range []struct {
			desc     string
			body     any
			status   int
			mentions []string
		}{
			{"missing everything", `{}`, http.StatusUnprocessableEntity, []string{"subscription", "email", "name", "password"}},
			{"missing subscription", with("subscription_id", nil), http.StatusUnprocessableEntity, []string{"subscription"}},
			{"unknown subscription", with("subscription_id", "sub_doesnotexist"), http.StatusUnprocessableEntity, []string{"subscription"}},
			{"missing email", with("email", nil), http.StatusUnprocessableEntity, []string{"email"}},
			{"bad email", with("email", "not-an-email"), http.StatusUnprocessableEntity, []string{"email"}},
			{"email without a dot in the domain", with("email", "a@localhost"), http.StatusUnprocessableEntity, []string{"email"}},
			{"email with a display name", with("email", "Bob <bob@city.example>"), http.StatusUnprocessableEntity, []string{"email"}},
			{"missing name", with("name", nil), http.StatusUnprocessableEntity, []string{"name"}},
			{"missing password", with("password", nil), http.StatusUnprocessableEntity, []string{"password"}},
			{"short password", with("password", "short"), http.StatusUnprocessableEntity, []string{"password", "10"}},
			{"duplicate email", with("email", "alice@city.example"), http.StatusConflict, []string{"email"}},
			{"duplicate email in capitals", with("email", "ALICE@city.example"), http.StatusConflict, []string{"email"}},
			{"duplicate email in another clinic", map[string]any{"subscription_id": other.ID, "email": "alice@city.example", "name": "Dr A2", "password": password}, http.StatusConflict, []string{"email"}},
			{"malformed JSON", `{"email":`, http.StatusBadRequest, []string{"JSON"}},
			{"unknown field", with("role", "admin"), http.StatusBadRequest, []string{"role"}},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/practitioners", tc.body)
				wantAPIError(t, status, doc, tc.status, tc.mentions...)
				if strings.Contains(doc["error"].(string), password) {
					t.Error("the error repeats the password")
				}
			})
		}
		for _, sub := range []string{subID, other.ID} {
			ps, err := e.Store.ListPractitioners(ctx, sub)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(ps); (sub == subID && n != 1) || (sub == other.ID && n != 0) {
				t.Errorf("subscription %s has %d practitioners after bad requests", sub, n)
			}
		}
		for _, email := range []string{"new@city.example", "not-an-email", "a@localhost"} {
			if _, err := e.Store.PractitionerByEmail(ctx, email); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a practitioner %s exists after bad requests (%v)", email, err)
			}
		}
		if p, err := e.Store.PractitionerByEmail(ctx, "alice@city.example"); err != nil || p.ID != aliceID {
			t.Errorf("the duplicate requests changed alice: %+v %v", p, err)
		}
	})

	t.Run("deactivate ends the practitioner's sessions", func(t *testing.T) {
		if r := alice.Get("/patients"); r.StatusCode != http.StatusOK {
			t.Fatalf("alice's session before: %d", r.StatusCode)
		}
		status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/practitioners/"+aliceID+"/deactivate", nil)
		if status != http.StatusOK || doc["id"] != aliceID || doc["active"] != false {
			t.Fatalf("deactivate: %d %v", status, doc)
		}
		if r := alice.Get("/patients"); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Location(), "/login") {
			t.Errorf("alice's session after deactivation: %d %q, want the login redirect", r.StatusCode, r.Location())
		}
		r := e.NewBrowser().PostForm("/login", url.Values{"email": {"alice@city.example"}, "password": {password}})
		wantPage(t, "deactivated login", r, http.StatusUnauthorized)
		status, doc = callAdminAPI(t, e, http.MethodPost, "/admin/api/practitioners/prac_doesnotexist/deactivate", nil)
		wantAPIError(t, status, doc, http.StatusNotFound)
	})
}

// TestAdminAPISharing: PUT …/sharing sets the groups; ids that are not
// practitioners of the subscription are refused and change nothing.
func TestAdminAPISharing(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	c := e.SeedClinic("City Physio", map[string]string{"a@city.example": "", "b@city.example": ""})
	o := e.SeedClinic("Other Clinic", map[string]string{"x@other.example": ""})
	a, b := c.Practitioners["a@city.example"].ID, c.Practitioners["b@city.example"].ID
	path := "/admin/api/subscriptions/" + c.Subscription.ID + "/sharing"

	status, doc := callAdminAPI(t, e, http.MethodPut, path, map[string]any{"patients": []string{b, a, a}, "content": []string{a}})
	if status != http.StatusOK {
		t.Fatalf("PUT sharing: %d %v", status, doc)
	}
	wantSharing := store.Sharing{SubscriptionID: c.Subscription.ID, Patients: sortedPair(a, b), Content: []string{a}}
	got, err := e.Store.GetSharing(ctx, c.Subscription.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantSharing, got); diff != "" {
		t.Errorf("stored sharing (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		desc, path string
		body       any
		status     int
		mention    string
	}{
		{"unknown practitioner id", path, map[string]any{"patients": []string{a, "prac_doesnotexist"}}, http.StatusUnprocessableEntity, "prac_doesnotexist"},
		{"another clinic's practitioner", path, map[string]any{"patients": []string{a, o.Practitioners["x@other.example"].ID}}, http.StatusUnprocessableEntity, o.Practitioners["x@other.example"].ID},
		{"unknown id in content", path, map[string]any{"patients": []string{}, "content": []string{"prac_nobody"}}, http.StatusUnprocessableEntity, "prac_nobody"},
		{"unknown subscription", "/admin/api/subscriptions/sub_doesnotexist/sharing", map[string]any{"patients": []string{a}}, http.StatusNotFound, ""},
		{"malformed JSON", path, `{"patients":[`, http.StatusBadRequest, "JSON"},
		{"ids not a list", path, `{"patients":"` + a + `"}`, http.StatusBadRequest, "JSON"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			status, doc := callAdminAPI(t, e, http.MethodPut, tc.path, tc.body)
			if tc.mention == "" {
				wantAPIError(t, status, doc, tc.status)
			} else {
				wantAPIError(t, status, doc, tc.status, tc.mention)
			}
			got, err := e.Store.GetSharing(ctx, c.Subscription.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantSharing, got); diff != "" {
				t.Errorf("a refused PUT changed the sharing (-want +got):\n%s", diff)
			}
		})
	}

	status, doc = callAdminAPI(t, e, http.MethodPut, path, map[string]any{"patients": []string{}, "content": []string{}})
	if status != http.StatusOK {
		t.Fatalf("PUT empty sharing: %d %v", status, doc)
	}
	if got, _ := e.Store.GetSharing(ctx, c.Subscription.ID); len(got.Patients) != 0 || len(got.Content) != 0 {
		t.Errorf("sharing after emptying: %+v", got)
	}
}

func sortedPair(a, b string) []string {
	if a < b {
		return []string{a, b}
	}
	return []string{b, a}
}

// TestAdminAPIAuth: no or a wrong bearer token is 401 and does nothing;
// without admin.token the API is off (503).
func TestAdminAPIAuth(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	off := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) { c.Admin.Token = "" }})
	ctx := context.Background()
	sub, err := e.Store.CreateSubscription(ctx, "City Physio")
	if err != nil {
		t.Fatal(err)
	}
	requests := []struct{ method, path, body string }{
		{http.MethodPost, "/admin/api/subscriptions", `{"name":"Sneaky"}`},
		{http.MethodPost, "/admin/api/practitioners", `{"subscription_id":"` + sub.ID + `","email":"sneaky@city.example","name":"Sneaky","password":"a good long password"}`},
		{http.MethodPost, "/admin/api/practitioners/prac_x/deactivate", ``},
		{http.MethodPut, "/admin/api/subscriptions/" + sub.ID + "/sharing", `{"patients":[]}`},
		{http.MethodGet, "/admin/api/jobs", ``},
		{http.MethodPost, "/admin/api/jobs/replay", `{"cause":"cliniko_unauthorized"}`},
	}
	for _, tc := range []struct {
		desc   string
		env    *apptest.Env
		auth   []string
		status int
	}{
		{"no token", e, nil, http.StatusUnauthorized},
		{"wrong token", e, []string{"Bearer wrong-token"}, http.StatusUnauthorized},
		{"token prefix", e, []string{"Bearer " + apptest.AdminToken[:10]}, http.StatusUnauthorized},
		{"token with a suffix", e, []string{"Bearer " + apptest.AdminToken + "x"}, http.StatusUnauthorized},
		{"basic auth", e, []string{"Basic " + apptest.AdminToken}, http.StatusUnauthorized},
		{"empty bearer", e, []string{"Bearer "}, http.StatusUnauthorized},
		{"admin.token empty, no token", off, nil, http.StatusServiceUnavailable},
		{"admin.token empty, empty bearer", off, []string{"Bearer "}, http.StatusServiceUnavailable},
		{"admin.token empty, test token", off, []string{"Bearer " + apptest.AdminToken}, http.StatusServiceUnavailable},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			for _, rq := range requests {
				h := http.Header{"Content-Type": {"application/json"}}
				if tc.auth != nil {
					h["Authorization"] = tc.auth
				}
				r := tc.env.NewBrowser().Do(rq.method, rq.path, strings.NewReader(rq.body), h)
				if r.StatusCode != tc.status {
					t.Errorf("%s %s: %d, want %d", rq.method, rq.path, r.StatusCode, tc.status)
				}
				if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || !strings.Contains(r.Body, `"error"`) {
					t.Errorf("%s %s: not a JSON error: %q %s", rq.method, rq.path, r.Header.Get("Content-Type"), r.Body)
				}
			}
		})
	}
	subs, _ := e.Store.ListSubscriptions(ctx)
	if len(subs) != 1 {
		t.Errorf("unauthorized requests created subscriptions: %d", len(subs))
	}
	if _, err := e.Store.PractitionerByEmail(ctx, "sneaky@city.example"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unauthorized request created a practitioner (%v)", err)
	}
	if subs, _ := off.Store.ListSubscriptions(ctx); len(subs) != 0 {
		t.Errorf("the disabled admin API created subscriptions: %d", len(subs))
	}
	// The right token works (the refusals above are not a broken route).
	if status, doc := callAdminAPI(t, e, http.MethodPost, "/admin/api/subscriptions", map[string]string{"name": "Real"}); status != http.StatusCreated {
		t.Errorf("with the token: %d %v", status, doc)
	}
}
