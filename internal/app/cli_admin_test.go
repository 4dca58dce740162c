package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/internal/cli"
	"github.com/physitrack/pmsbridge/store"
)

// adminCLI runs `pmsbridge admin …` in-process against the app's Redis.
type adminCLI struct {
	t       *testing.T
	environ []string
}

func newAdminCLI(t *testing.T, e *apptest.Env) adminCLI {
	c := e.Config
	env := map[string]string{
		"region":                 c.Region,
		"public_url":             c.PublicURL,
		"redis.url":              c.Redis.URL,
		"cliniko.base_url":       c.Cliniko.BaseURL,
		"cliniko.user_agent":     c.Cliniko.UserAgent,
		"secrets.encryption_key": c.Secrets.EncryptionKey,
		"webhooks.secret":        c.Webhooks.Secret,
		"admin.token":            c.Admin.Token,
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, config.EnvName(k)+"="+v)
	}
	return adminCLI{t: t, environ: environ}
}

// run runs the command with extra environment variables and stdin, and
// returns the exit code, stdout and stderr.
func (c adminCLI) run(stdin string, extraEnv []string, args ...string) (int, string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := cli.Execute(context.Background(), append([]string{"admin"}, args...), strings.NewReader(stdin), &out, &errb, append(c.environ[:len(c.environ):len(c.environ)], extraEnv...))
	return code, out.String(), errb.String()
}

// ok runs a command that must succeed and returns its stdout.
func (c adminCLI) ok(extraEnv []string, args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run("", extraEnv, args...)
	if code != cli.ExitOK {
		c.t.Fatalf("pmsbridge admin %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// okJSON runs a command with --json and decodes its output into v.
func (c adminCLI) okJSON(v any, extraEnv []string, args ...string) {
	c.t.Helper()
	out := c.ok(extraEnv, append(args, "--json")...)
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(v); err != nil {
		c.t.Fatalf("pmsbridge admin %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		c.t.Errorf("pmsbridge admin %s --json printed more than one JSON document:\n%s", strings.Join(args, " "), out)
	}
}

// TestAdminCLI: `pmsbridge admin` creates subscriptions and practitioners,
// deactivates and sets sharing in the app's Redis, like the admin API; bad
// input exits 2 with a clear message and changes nothing.
func TestAdminCLI(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	c := newAdminCLI(t, e)
	newPassword := []string{"PMSBRIDGE_NEW_PASSWORD=" + apptest.Password}

	var sub map[string]string
	c.okJSON(&sub, nil, "subscription", "create", "--name", "City Physio")
	if !strings.HasPrefix(sub["id"], "sub_") || sub["name"] != "City Physio" || sub["time_zone"] != "Australia/Sydney" || len(sub) != 3 {
		t.Fatalf("subscription create --json: %v, want {id, name, time_zone} like the API", sub)
	}
	if got, err := e.Store.GetSubscription(ctx, sub["id"]); err != nil || got.Name != "City Physio" {
		t.Fatalf("the app does not see the new subscription: %+v %v", got, err)
	}
	out := c.ok(nil, "subscription", "create", "--name", "Text Clinic")
	if !strings.HasPrefix(out, "Created subscription sub_") || !strings.Contains(out, "Text Clinic") {
		t.Errorf("subscription create: %q", out)
	}

	var subs struct {
		Subscriptions []store.Subscription `json:"subscriptions"`
	}
	c.okJSON(&subs, nil, "subscription", "list")
	if len(subs.Subscriptions) != 2 || subs.Subscriptions[0].ID != sub["id"] || subs.Subscriptions[1].Name != "Text Clinic" {
		t.Errorf("subscription list --json: %+v", subs)
	}
	if out := c.ok(nil, "subscription", "list"); !strings.Contains(out, "ID") || !strings.Contains(out, sub["id"]) || !strings.Contains(out, "City Physio") {
		t.Errorf("subscription list:\n%s", out)
	}

	// A practitioner, password from PMSBRIDGE_NEW_PASSWORD; they can log in
	// to the app at once.
	var ann map[string]any
	c.okJSON(&ann, newPassword, "practitioner", "create", "--subscription", sub["id"], "--email", "Ann@City.Example", "--name", "Dr Ann")
	annID, _ := ann["id"].(string)
	if diff := cmp.Diff(map[string]any{"id": annID, "subscription_id": sub["id"], "email": "ann@city.example", "name": "Dr Ann", "active": true}, ann); diff != "" || !strings.HasPrefix(annID, "prac_") {
		t.Errorf("practitioner create --json (-want +got):\n%s", diff)
	}
	annBrowser := e.Login("ann@city.example")
	// Another, password from stdin; text output.
	code, out, errOut := c.run("another long password\n", nil, "practitioner", "create", "--subscription", sub["id"], "--email", "bob@city.example", "--name", "Dr Bob")
	if code != cli.ExitOK || !strings.HasPrefix(out, "Created practitioner prac_") {
		t.Fatalf("practitioner create (stdin password): exit %d %q %q", code, out, errOut)
	}
	if r := e.NewBrowser().PostForm("/login", url.Values{"email": {"bob@city.example"}, "password": {"another long password"}}); r.StatusCode != http.StatusSeeOther {
		t.Errorf("bob cannot log in with the password from stdin: %d", r.StatusCode)
	}
	bob, err := e.Store.PractitionerByEmail(ctx, "bob@city.example")
	if err != nil {
		t.Fatal(err)
	}

	var pracs struct {
		Practitioners []map[string]any `json:"practitioners"`
	}
	c.okJSON(&pracs, nil, "practitioner", "list", "--subscription", sub["id"])
	if len(pracs.Practitioners) != 2 {
		t.Fatalf("practitioner list --json: %v", pracs)
	}
	for _, p := range pracs.Practitioners {
		for _, f := range []string{"id", "subscription_id", "email", "name", "active"} {
			if _, ok := p[f]; !ok {
				t.Errorf("practitioner list --json: %v lacks %q", p, f)
			}
		}
		for f := range p {
			if strings.Contains(f, "password") {
				t.Errorf("practitioner list --json shows %s", f)
			}
		}
	}
	if out := c.ok(nil, "practitioner", "list", "--subscription", sub["id"]); !strings.Contains(out, "ann@city.example") || !strings.Contains(out, "Dr Bob") {
		t.Errorf("practitioner list:\n%s", out)
	}

	var sharing store.Sharing
	c.okJSON(&sharing, nil, "sharing", "set", sub["id"], "--patients", annID+","+bob.ID, "--content", annID, "--yes")
	want := store.Sharing{SubscriptionID: sub["id"], Patients: sortedPair(annID, bob.ID), Content: []string{annID}}
	if diff := cmp.Diff(want, sharing); diff != "" {
		t.Errorf("sharing set --json (-want +got):\n%s", diff)
	}
	if got, _ := e.Store.GetSharing(ctx, sub["id"]); cmp.Diff(want, got) != "" {
		t.Errorf("stored sharing: %+v", got)
	}

	t.Run("bad input exits 2 and changes nothing", func(t *testing.T) {
		for _, tc := range []struct {
			desc     string
			env      []string
			stdin    string
			args     []string
			mentions []string
		}{
			{"subscription without a name", nil, "", []string{"subscription", "create"}, []string{"name"}},
			{"subscription with a blank name", nil, "", []string{"subscription", "create", "--name", "  "}, []string{"name"}},
			{"subscription with an argument", nil, "", []string{"subscription", "create", "extra", "--name", "X"}, []string{"extra"}},
			{"practitioner with a bad email", newPassword, "", []string{"practitioner", "create", "--subscription", sub["id"], "--email", "not-an-email", "--name", "X"}, []string{"email"}},
			{"practitioner with a short password", []string{"PMSBRIDGE_NEW_PASSWORD=short"}, "", []string{"practitioner", "create", "--subscription", sub["id"], "--email", "c@city.example", "--name", "X"}, []string{"password", "10"}},
			{"practitioner without a password", nil, "", []string{"practitioner", "create", "--subscription", sub["id"], "--email", "c@city.example", "--name", "X"}, []string{"password"}},
			{"practitioner without a name", newPassword, "", []string{"practitioner", "create", "--subscription", sub["id"], "--email", "c@city.example"}, []string{"name"}},
			{"practitioner of an unknown subscription", newPassword, "", []string{"practitioner", "create", "--subscription", "sub_nope", "--email", "c@city.example", "--name", "X"}, []string{"subscription"}},
			{"practitioner with a taken email", newPassword, "", []string{"practitioner", "create", "--subscription", sub["id"], "--email", "ANN@city.example", "--name", "X"}, []string{"email"}},
			{"practitioner list without a subscription", nil, "", []string{"practitioner", "list"}, []string{"--subscription"}},
			{"deactivate without an id", nil, "", []string{"practitioner", "deactivate"}, []string{"arg"}},
			{"deactivate an unknown id", nil, "", []string{"practitioner", "deactivate", "prac_nope"}, []string{"not found"}},
			{"sharing with an unknown practitioner", nil, "", []string{"sharing", "set", sub["id"], "--patients", annID + ",prac_nope", "--yes"}, []string{"prac_nope"}},
			{"sharing of an unknown subscription", nil, "", []string{"sharing", "set", "sub_nope", "--patients", annID, "--yes"}, []string{"not found"}},
			{"sharing without --yes and without a terminal", nil, "y\n", []string{"sharing", "set", sub["id"], "--patients", bob.ID}, []string{"--yes"}},
			{"unknown flag", nil, "", []string{"subscription", "create", "--nmae", "X"}, []string{"nmae"}},
			{"unknown command", nil, "", []string{"clinic", "create"}, []string{"clinic"}},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				code, out, errOut := c.run(tc.stdin, tc.env, tc.args...)
				if code != cli.ExitUsage {
					t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
				}
				if strings.Contains(out, "Created") || strings.Contains(out, "Deactivated") {
					t.Errorf("stdout claims success: %q", out)
				}
				for _, m := range tc.mentions {
					if !strings.Contains(errOut, m) {
						t.Errorf("stderr does not mention %q:\n%s", m, errOut)
					}
				}
				if strings.Contains(errOut, apptest.Password) || strings.Contains(errOut, "short\n") {
					t.Error("stderr repeats the password")
				}
			})
		}
		if subs, _ := e.Store.ListSubscriptions(ctx); len(subs) != 2 {
			t.Errorf("%d subscriptions after bad input, want 2", len(subs))
		}
		if ps, _ := e.Store.ListPractitioners(ctx, sub["id"]); len(ps) != 2 {
			t.Errorf("%d practitioners after bad input, want 2", len(ps))
		}
		if _, err := e.Store.PractitionerByEmail(ctx, "c@city.example"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("bad input created c@city.example (%v)", err)
		}
		if got, _ := e.Store.GetSharing(ctx, sub["id"]); cmp.Diff(want, got) != "" {
			t.Errorf("bad input changed the sharing: %+v", got)
		}
	})

	t.Run("bad configuration exits 2", func(t *testing.T) {
		var kept []string
		for _, kv := range c.environ {
			if !strings.HasPrefix(kv, "PMSBRIDGE_SECRETS_ENCRYPTION_KEY=") {
				kept = append(kept, kv)
			}
		}
		code, _, errOut := adminCLI{t: t, environ: kept}.run("", nil, "subscription", "list")
		if code != cli.ExitUsage || !strings.Contains(errOut, "secrets.encryption_key") {
			t.Errorf("without an encryption key: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("deactivate ends the practitioner's sessions", func(t *testing.T) {
		if r := annBrowser.Get("/patients"); r.StatusCode != http.StatusOK {
			t.Fatalf("ann's session before: %d", r.StatusCode)
		}
		var got map[string]any
		c.okJSON(&got, nil, "practitioner", "deactivate", annID)
		if got["id"] != annID || got["active"] != false {
			t.Errorf("deactivate --json: %v, want the practitioner with active false (as the API)", got)
		}
		if r := annBrowser.Get("/patients"); r.StatusCode != http.StatusSeeOther {
			t.Errorf("ann's session after deactivate: %d, want the login redirect", r.StatusCode)
		}
		if r := e.NewBrowser().PostForm("/login", url.Values{"email": {"ann@city.example"}, "password": {apptest.Password}}); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("deactivated ann logs in: %d", r.StatusCode)
		}
		if out := c.ok(nil, "practitioner", "deactivate", bob.ID); !strings.Contains(out, "Deactivated "+bob.ID) {
			t.Errorf("deactivate: %q", out)
		}
	})
}

// TestAdminCLITransfer: `pmsbridge admin patient transfer` hands a patient
// to a colleague (audited), and exits non-zero, changing nothing, when
// there is nothing to do or the input is wrong.
func TestAdminCLITransfer(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	s := newSharingSetup(t, e, "cli-transfer")
	c := newAdminCLI(t, e)
	for _, tc := range []struct {
		desc string
		args []string
		text string
	}{
		{"no --to", []string{"patient", "transfer", s.patientID}, "--to is required"},
		{"no patient", []string{"patient", "transfer", "--to", s.colleagueID}, "accepts 1 arg"},
		{"unknown patient", []string{"patient", "transfer", "pat_nope", "--to", s.colleagueID}, "not found"},
		{"unknown practitioner", []string{"patient", "transfer", s.patientID, "--to", "prac_nope"}, "not a practitioner of the patient's subscription"},
		{"the owner already", []string{"patient", "transfer", s.patientID, "--to", s.ownerID}, "already owns"},
	} {
		code, out, errOut := c.run("", nil, tc.args...)
		if code != cli.ExitUsage || !strings.Contains(errOut, tc.text) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 saying %q", tc.desc, code, out, errOut, tc.text)
		}
	}
	if p, _ := e.Store.GetPatient(ctx, s.patientID); p.OwnerID != s.ownerID {
		t.Fatalf("a refused command changed the owner to %s", p.OwnerID)
	}
	var doc map[string]string
	c.okJSON(&doc, nil, "patient", "transfer", s.patientID, "--to", s.colleagueID)
	if doc["owner_id"] != s.colleagueID || doc["previous_owner_id"] != s.ownerID || doc["id"] != s.patientID {
		t.Errorf("patient transfer --json: %v", doc)
	}
	s.colleagueOpens(t, e)
	if out := c.ok(nil, "patient", "transfer", s.patientID, "--to", s.ownerID); !strings.Contains(out, "Transferred "+s.patientID+" from "+s.colleagueID+" to "+s.ownerID) {
		t.Errorf("patient transfer: %q", out)
	}
	audit, _ := e.Store.AuditOf(ctx, s.patientID, 0)
	var transfers []string
	for _, a := range audit { // newest first; Cliniko calls of the refreshes come in between
		if a.Op == "patient.transferred" {
			transfers = append(transfers, a.Detail)
		}
	}
	want := []string{"to " + s.ownerID + " from " + s.colleagueID + " by support", "to " + s.colleagueID + " from " + s.ownerID + " by support"}
	if !slices.Equal(transfers, want) {
		t.Errorf("transfers in the audit log: %q, want %q", transfers, want)
	}
}

// TestAdminCLIReencrypt: after a key rotation, `pmsbridge admin keys
// reencrypt` re-seals what the old key sealed, so the old key can be
// dropped: with only the new key, the patient, the programme, its code and
// the Cliniko key still read. Without a terminal it asks for --yes and
// changes nothing.
func TestAdminCLIReencrypt(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	s := newSharingSetup(t, e, "cli-reencrypt")
	prog, _, err := e.Store.CreateProgramme(ctx, pmsbridge.Programme{PatientID: s.patientID, PractitionerID: s.ownerID,
		Title: "Knee rehab, week 1", StartsOn: "2026-11-22", Notes: "Stop if it hurts."})
	if err != nil {
		t.Fatal(err)
	}
	oldKey := e.Config.Secrets.EncryptionKey
	newKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, store.KeySize))
	rotated := []string{"PMSBRIDGE_SECRETS_ENCRYPTION_KEY=" + newKey, "PMSBRIDGE_SECRETS_PREVIOUS_ENCRYPTION_KEYS=" + oldKey}
	c := newAdminCLI(t, e)
	old, err := store.ParseKey(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	// Which key sealed the patient's details (the record is live: the app
	// runs, so Redis as a whole keeps changing).
	sealedBy := func() string {
		t.Helper()
		raw, err := e.App.Redis().Get(ctx, "pmsb:pat:"+s.patientID).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		var rec struct{ Details string }
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		return strings.Split(rec.Details, ":")[1]
	}
	if code, out, errOut := c.run("", rotated, "keys", "reencrypt"); code != cli.ExitUsage || !strings.Contains(errOut, "--yes") {
		t.Fatalf("without a terminal: exit %d, stdout %q, stderr %q; want exit 2 asking for --yes", code, out, errOut)
	}
	if got := sealedBy(); got != store.KeyID(old) {
		t.Fatalf("the refused command re-sealed the patient (key %s)", got)
	}
	out := c.ok(rotated, "keys", "reencrypt", "--yes")
	if !strings.Contains(out, "Re-sealed") || !strings.Contains(out, "previous_encryption_keys") {
		t.Errorf("reencrypt said %q", out)
	}
	if got := sealedBy(); got == store.KeyID(old) {
		t.Error("the patient is still sealed with the old key")
	}
	if out := c.ok(rotated, "keys", "reencrypt", "--yes"); !strings.Contains(out, "nothing needed re-sealing") {
		t.Errorf("a second run said %q, want that nothing needed re-sealing", out)
	}
	k, err := store.ParseKey(newKey)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := store.NewKeyring(k) // the old key dropped
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(e.App.Redis(), store.Options{Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := st.GetPatient(ctx, s.patientID); err != nil || p.FirstName != "Zoë" {
		t.Errorf("patient with only the new key: %+v, %v", p.FirstName, err)
	}
	if got, err := st.GetProgramme(ctx, prog.ID, 1); err != nil || got.Title != prog.Title || got.Notes != prog.Notes {
		t.Errorf("programme with only the new key: %q %q, %v", got.Title, got.Notes, err)
	}
	if got, err := st.LatestByCode(ctx, prog.Code); err != nil || got.ID != prog.ID {
		t.Errorf("code with only the new key: %v, %v", got.ID, err)
	}
	if _, _, err := st.ClinikoKey(ctx, s.ownerID); err != nil {
		t.Errorf("Cliniko key with only the new key: %v", err)
	}
}
