package app_test

// Tests of issue 11, "hold the line against strangers": client addresses
// behind proxies, limits under bursts, bounded work.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/cliniko/clinikotest"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/apptest"
)

// postFrom posts a form with an X-Forwarded-For header ("" for none), as
// a proxy in front would pass it on.
func postFrom(b *apptest.Browser, path string, form url.Values, forwardedFor string) apptest.Response {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if forwardedFor != "" {
		h.Set("X-Forwarded-For", forwardedFor)
	}
	return b.Do(http.MethodPost, path, strings.NewReader(form.Encode()), h)
}

// junkLogins sends n failed logins for made-up accounts with the given
// X-Forwarded-For values (used in turn) and wants each to be a 401.
func junkLogins(t *testing.T, b *apptest.Browser, n int, forwardedFor ...string) {
	t.Helper()
	for i := range n {
		xff := forwardedFor[i%len(forwardedFor)]
		r := postFrom(b, "/login", url.Values{"email": {fmt.Sprintf("junk%d@nowhere.example", i)}, "password": {"not the password"}}, xff)
		if r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("junk login %d from %q: %d, want 401", i+1, xff, r.StatusCode)
		}
	}
}

// TestClientAddressBehindProxy: behind a trusted proxy each client has its
// own limits (a stranger's junk logins and codes lock out only the
// stranger), the X-Forwarded-For of an untrusted peer is ignored, what a
// client writes left of the proxy's entry does not help it, IPv6 clients
// count per /64, and the session record and the request log name the
// client, not the proxy.
func TestClientAddressBehindProxy(t *testing.T) {
	t.Parallel()
	const stranger, colleague = "203.0.113.7", "198.51.100.9"

	t.Run("trusted proxy", func(t *testing.T) {
		t.Parallel()
		// The app on :0 sees the test as 127.0.0.1: that is the proxy.
		e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.1"} }})
		clinic := e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
		b := e.NewBrowser()
		junkLogins(t, b, 10, stranger)
		right := url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}}
		wantPage(t, "the stranger's 11th try", postFrom(b, "/login", right, stranger), http.StatusTooManyRequests, "Too many failed attempts")
		// The stranger cannot get out of the lock by writing another
		// address in front of what the proxy saw.
		wantPage(t, "the stranger with a made-up address", postFrom(b, "/login", right, colleague+", "+stranger), http.StatusTooManyRequests)
		wantPage(t, "the stranger behind a second trusted hop", postFrom(b, "/login", right, stranger+", 127.0.0.1"), http.StatusTooManyRequests)

		// Everyone else behind the same proxy logs in.
		r := postFrom(b, "/login", right, colleague)
		wantRedirect(t, "a colleague behind the same proxy", r, "/patients")
		tok := sessionCookieOf(r)
		if tok == nil {
			t.Fatal("no session cookie")
		}
		sess, err := e.Store.GetSession(context.Background(), tok.Value)
		if err != nil || sess.IP != colleague || sess.PractitionerID != clinic.Practitioners["demo@clinic.example"].ID {
			t.Errorf("session record: ip %q practitioner %q (%v), want ip %s", sess.IP, sess.PractitionerID, err, colleague)
		}
		if !strings.Contains(e.Logs.String(), `"remote":"`+colleague+`"`) {
			t.Errorf("the request log does not name the client %s", colleague)
		}

		// IPv6: one /64 is one client.
		var v6 []string
		for i := range 10 {
			v6 = append(v6, fmt.Sprintf("2001:db8:1:2::%x", i+1))
		}
		junkLogins(t, b, 10, v6...)
		wantPage(t, "another address of the same /64", postFrom(b, "/login", right, "2001:db8:1:2:ffff:ffff:ffff:ffff"), http.StatusTooManyRequests)
		wantRedirect(t, "the next /64", postFrom(b, "/login", right, "2001:db8:1:3::1"), "/patients")
	})

	t.Run("trusted proxy, patient access", func(t *testing.T) {
		t.Parallel()
		e, _, _, code := accessSetupWith(t, apptest.Options{Configure: func(c *config.Config) { c.HTTP.TrustedProxies = []string{"127.0.0.0/8"} }}, clinikotest.DemoPatientID)
		b := e.NewBrowser()
		for i := range 30 {
			junk := otherCode(code, 1+i%25)
			junk = junk[:7] + string(rune('a'+i%26))
			if r := postFrom(b, "/access", url.Values{"code": {junk}, "year_of_birth": {"1985"}}, stranger); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("junk code %d: %d, want 401", i+1, r.StatusCode)
			}
		}
		right := url.Values{"code": {code}, "year_of_birth": {"1985"}}
		wantPage(t, "the stranger's 31st try", postFrom(b, "/access", right, stranger), http.StatusTooManyRequests, "Too many attempts")
		wantPage(t, "the patient behind the same proxy", postFrom(b, "/access", right, colleague), http.StatusOK, "Knee rehab, week 1")
	})

	t.Run("untrusted peer", func(t *testing.T) {
		t.Parallel()
		e := apptest.Start(t, apptest.Options{Configure: func(c *config.Config) { c.HTTP.TrustedProxies = []string{"10.0.0.0/8"} }})
		e.SeedClinic("Demo Physio Clinic", map[string]string{"demo@clinic.example": ""})
		b := e.NewBrowser()
		// A client that is no proxy of ours cannot spread its tries over
		// made-up addresses.
		junkLogins(t, b, 10, "192.0.2.1", "192.0.2.2", "192.0.2.3")
		right := url.Values{"email": {"demo@clinic.example"}, "password": {apptest.Password}}
		wantPage(t, "11th try with yet another made-up address", postFrom(b, "/login", right, "192.0.2.99"), http.StatusTooManyRequests)
	})
}
