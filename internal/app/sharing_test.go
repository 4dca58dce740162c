package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/internal/apptest"
	"github.com/physitrack/pmsbridge/store"
)

// callAdminAPI calls the admin API with the test token and decodes the
// JSON answer (nil when the body is empty or not an object).
func callAdminAPI(t *testing.T, e *apptest.Env, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var h http.Header = http.Header{"Authorization": {"Bearer " + apptest.AdminToken}, "Content-Type": {"application/json"}}
	var rd *strings.Reader
	switch b := body.(type) {
	case nil:
		rd = strings.NewReader("")
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(raw))
	}
	r := e.NewBrowser().Do(method, path, rd, h)
	var doc map[string]any
	_ = json.Unmarshal([]byte(r.Body), &doc)
	return r.StatusCode, doc
}

// sharingSetup is one clinic with an owner who imported the demo patient
// and a colleague, both logged in.
type sharingSetup struct {
	clinic           apptest.Clinic
	owner, colleague *apptest.Browser
	ownerID          string
	ownerName        string
	colleagueID      string
	colleagueEmail   string
	patientID        string
}

func newSharingSetup(t *testing.T, e *apptest.Env, slug string) sharingSetup {
	t.Helper()
	ownerEmail, colleagueEmail := "owner@"+slug+".example", "colleague@"+slug+".example"
	c := e.SeedClinic(slug, map[string]string{ownerEmail: sandbox.DemoAdminKey, colleagueEmail: sandbox.DemoPractitionerKey})
	s := sharingSetup{clinic: c, owner: e.Login(ownerEmail), colleague: e.Login(colleagueEmail),
		ownerID: c.Practitioners[ownerEmail].ID, ownerName: c.Practitioners[ownerEmail].Name,
		colleagueEmail: colleagueEmail, colleagueID: c.Practitioners[colleagueEmail].ID}
	_, s.patientID = s.owner.Open(sandbox.DemoPatientID)
	if s.patientID == "" {
		t.Fatal("the owner could not import the demo patient")
	}
	return s
}

// colleagueOpens asserts that the colleague's click lands on the owner's
// patient (not a copy).
func (s sharingSetup) colleagueOpens(t *testing.T, e *apptest.Env) {
	t.Helper()
	r := s.colleague.Get(importPath + sandbox.DemoPatientID)
	wantRedirect(t, "colleague's click", r, "/patients/"+s.patientID)
	wantPage(t, "colleague's patient page", s.colleague.Get("/patients/"+s.patientID), http.StatusOK, "Zoë")
	if links := linksOf(t, e, s.clinic.Subscription.ID, "au1"); len(links) != 1 || links[sandbox.DemoPatientID] != s.patientID {
		t.Errorf("links %v, want only %s → %s", links, sandbox.DemoPatientID, s.patientID)
	}
}

// colleagueRefused asserts that the colleague gets the 404 page naming the
// owner, and no access by any route.
func (s sharingSetup) colleagueRefused(t *testing.T, ownerName string) {
	t.Helper()
	r := s.colleague.Get(importPath + sandbox.DemoPatientID)
	wantPage(t, "colleague's click", r, http.StatusNotFound, "This patient belongs to "+ownerName,
		"has not shared them with you", "Share the patient with you", "Transfer the patient to you", "patient-sharing group")
	wantPage(t, "colleague's patient page", s.colleague.Get("/patients/"+s.patientID), http.StatusNotFound, "This patient belongs to "+ownerName)
	if strings.Contains(r.Body, "Zoë") || strings.Contains(r.Body, "O&#39;Brien") {
		t.Error("the refusal page shows the patient's name")
	}
	if r := s.colleague.Get("/api/patients/" + s.patientID); r.StatusCode != http.StatusNotFound {
		t.Errorf("colleague's GET /api/patients: %d, want 404", r.StatusCode)
	}
	if r := s.colleague.Get("/patients"); strings.Contains(r.Body, "/patients/"+s.patientID) {
		t.Error("the patient is in the colleague's list")
	}
}

// TestSharingRules: who may open a patient that a colleague imported.
func TestSharingRules(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})

	t.Run("no sharing: the colleague gets the owner's 404 page", func(t *testing.T) {
		t.Parallel()
		s := newSharingSetup(t, e, "noshare")
		s.colleagueRefused(t, s.ownerName)
		// The colleague may not share the patient with themselves either.
		r := s.colleague.PostForm("/patients/"+s.patientID+"/share", url.Values{"email": {s.colleagueEmail}, "action": {"share"}})
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("colleague sharing the owner's patient: %d, want 404", r.StatusCode)
		}
		s.colleagueRefused(t, s.ownerName)
	})

	t.Run("individual share, then unshare", func(t *testing.T) {
		t.Parallel()
		s := newSharingSetup(t, e, "individual")
		r := s.owner.PostForm("/patients/"+s.patientID+"/share", url.Values{"email": {s.colleagueEmail}, "action": {"share"}})
		wantRedirect(t, "share", r, "/patients/"+s.patientID+"?done=shared")
		s.colleagueOpens(t, e)
		// The owner deactivated does not end an individual share.
		if status, _ := callAdminAPI(t, e, http.MethodPost, "/admin/api/practitioners/"+s.ownerID+"/deactivate", nil); status != http.StatusOK {
			t.Fatalf("deactivate owner: %d", status)
		}
		s.colleagueOpens(t, e)
		if err := e.Store.Reactivate(context.Background(), s.ownerID); err != nil {
			t.Fatal(err)
		}
		owner := e.Login("owner@individual.example")
		r = owner.PostForm("/patients/"+s.patientID+"/share", url.Values{"email": {s.colleagueEmail}, "action": {"unshare"}})
		wantRedirect(t, "unshare", r, "/patients/"+s.patientID+"?done=unshared")
		s.colleagueRefused(t, s.ownerName)
	})

	t.Run("sharing group, and not once the owner is deactivated", func(t *testing.T) {
		t.Parallel()
		s := newSharingSetup(t, e, "group")
		sharing := "/admin/api/subscriptions/" + s.clinic.Subscription.ID + "/sharing"
		// The colleague alone in the group is not enough: the owner must be in it.
		if status, doc := callAdminAPI(t, e, http.MethodPut, sharing, map[string]any{"patients": []string{s.colleagueID}, "content": []string{}}); status != http.StatusOK {
			t.Fatalf("PUT sharing: %d %v", status, doc)
		}
		s.colleagueRefused(t, s.ownerName)
		if status, doc := callAdminAPI(t, e, http.MethodPut, sharing, map[string]any{"patients": []string{s.ownerID, s.colleagueID}, "content": []string{}}); status != http.StatusOK {
			t.Fatalf("PUT sharing: %d %v", status, doc)
		}
		s.colleagueOpens(t, e)
		if status, _ := callAdminAPI(t, e, http.MethodPost, "/admin/api/practitioners/"+s.ownerID+"/deactivate", nil); status != http.StatusOK {
			t.Fatalf("deactivate owner: %d", status)
		}
		s.colleagueRefused(t, s.ownerName)
		// Back in the group's reach when the owner is active again; out
		// when the group is emptied.
		if err := e.Store.Reactivate(context.Background(), s.ownerID); err != nil {
			t.Fatal(err)
		}
		s.colleagueOpens(t, e)
		if status, doc := callAdminAPI(t, e, http.MethodPut, sharing, map[string]any{"patients": []string{}, "content": []string{}}); status != http.StatusOK {
			t.Fatalf("PUT sharing: %d %v", status, doc)
		}
		s.colleagueRefused(t, s.ownerName)
	})

	t.Run("transfer changes the owner and the old owner loses access", func(t *testing.T) {
		t.Parallel()
		s := newSharingSetup(t, e, "transfer")
		// Shared first: the transfer makes the reader the owner.
		r := s.owner.PostForm("/patients/"+s.patientID+"/share", url.Values{"email": {s.colleagueEmail}, "action": {"share"}})
		wantRedirect(t, "share", r, "/patients/"+s.patientID+"?done=shared")
		r = s.owner.PostForm("/patients/"+s.patientID+"/transfer", url.Values{"email": {s.colleagueEmail}})
		wantRedirect(t, "transfer", r, "/patients?done=transferred")
		p, err := e.Store.GetPatient(context.Background(), s.patientID)
		if err != nil || p.OwnerID != s.colleagueID {
			t.Fatalf("after transfer the owner is %q (%v), want %s", p.OwnerID, err, s.colleagueID)
		}
		if slices.Contains(p.SharedWith, s.colleagueID) || slices.Contains(p.SharedWith, s.ownerID) {
			t.Errorf("after transfer the patient is shared with %v", p.SharedWith)
		}
		s.colleagueOpens(t, e)
		colleagueEmailame := s.clinic.Practitioners[s.colleagueEmail].Name
		r = s.owner.Get(importPath + sandbox.DemoPatientID)
		wantPage(t, "old owner's click", r, http.StatusNotFound, "This patient belongs to "+colleagueEmailame)
		wantPage(t, "old owner's patient page", s.owner.Get("/patients/"+s.patientID), http.StatusNotFound, "This patient belongs to "+colleagueEmailame)
		// The old owner can no longer share or transfer it back.
		r = s.owner.PostForm("/patients/"+s.patientID+"/transfer", url.Values{"email": {"owner@transfer.example"}})
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("old owner transferring back: %d, want 404", r.StatusCode)
		}
		if p, _ := e.Store.GetPatient(context.Background(), s.patientID); p.OwnerID != s.colleagueID {
			t.Errorf("the old owner changed the owner to %s", p.OwnerID)
		}
	})

	t.Run("share or transfer to someone outside the clinic is refused", func(t *testing.T) {
		t.Parallel()
		s := newSharingSetup(t, e, "outsiders")
		e.SeedClinic("Other Clinic", map[string]string{"stranger@other.example": ""})
		inactive, err := e.Store.CreatePractitioner(context.Background(), store.NewPractitioner{SubscriptionID: s.clinic.Subscription.ID,
			Email: "inactive@outsiders.example", Name: "Dr Inactive", Password: apptest.Password})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Store.Deactivate(context.Background(), inactive.ID); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ desc, path, email, action string }{
			{"share with another clinic's practitioner", "/share", "stranger@other.example", "share"},
			{"share with an unknown email", "/share", "nobody@nowhere.example", "share"},
			{"share with no email", "/share", "", "share"},
			{"share with an unknown action", "/share", s.colleagueEmail, "give"},
			{"share with the owner", "/share", "owner@outsiders.example", "share"},
			{"share with a deactivated colleague", "/share", "inactive@outsiders.example", "share"},
			{"transfer to a deactivated colleague", "/transfer", "inactive@outsiders.example", ""},
			{"transfer to another clinic's practitioner", "/transfer", "stranger@other.example", ""},
			{"transfer to the owner", "/transfer", "owner@outsiders.example", ""},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				r := s.owner.PostForm("/patients/"+s.patientID+tc.path, url.Values{"email": {tc.email}, "action": {tc.action}})
				if r.StatusCode != http.StatusUnprocessableEntity {
					t.Fatalf("%d, want 422", r.StatusCode)
				}
				if !strings.Contains(r.Body, `role="alert"`) && !strings.Contains(r.Body, "error") {
					t.Errorf("the page does not explain the problem")
				}
			})
		}
		p, err := e.Store.GetPatient(context.Background(), s.patientID)
		if err != nil || p.OwnerID != s.ownerID || len(p.SharedWith) != 0 {
			t.Errorf("after refused requests: owner %s, shared with %v (%v)", p.OwnerID, p.SharedWith, err)
		}
		stranger := e.Login("stranger@other.example")
		if r := stranger.Get("/patients/" + s.patientID); r.StatusCode != http.StatusNotFound || strings.Contains(r.Body, s.ownerName) {
			t.Errorf("another clinic's practitioner: %d (names the owner: %v), want a plain 404", r.StatusCode, strings.Contains(r.Body, s.ownerName))
		}
	})

	t.Run("links are per subscription", func(t *testing.T) {
		t.Parallel()
		a := newSharingSetup(t, e, "clinic-a")
		b := newSharingSetup(t, e, "clinic-b")
		if a.patientID == b.patientID {
			t.Fatalf("two clinics share patient %s", a.patientID)
		}
		pb, _ := e.Store.GetPatient(context.Background(), b.patientID)
		if pb.SubscriptionID != b.clinic.Subscription.ID || pb.OwnerID != b.ownerID {
			t.Errorf("clinic b's patient: subscription %s owner %s", pb.SubscriptionID, pb.OwnerID)
		}
	})
}

// TestOnlyOwnerHandsOver: a colleague who may open the patient (an
// individual share, or the sharing group) may work with them but not give
// them away: share, unshare and transfer get a 403 page naming the owner
// and change nothing; the owner's own hand-overs still work.
func TestOnlyOwnerHandsOver(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	for _, how := range []string{"individual share", "sharing group"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			slug := strings.ReplaceAll(how, " ", "-")
			s := newSharingSetup(t, e, slug)
			third, err := e.Store.CreatePractitioner(context.Background(), store.NewPractitioner{SubscriptionID: s.clinic.Subscription.ID,
				Email: "third@" + slug + ".example", Name: "Dr Third", Password: apptest.Password})
			if err != nil {
				t.Fatal(err)
			}
			if how == "individual share" {
				wantRedirect(t, "share", s.owner.PostForm("/patients/"+s.patientID+"/share", url.Values{"email": {s.colleagueEmail}, "action": {"share"}}), "/patients/"+s.patientID+"?done=shared")
			} else if status, doc := callAdminAPI(t, e, http.MethodPut, "/admin/api/subscriptions/"+s.clinic.Subscription.ID+"/sharing",
				map[string]any{"patients": []string{s.ownerID, s.colleagueID}, "content": []string{}}); status != http.StatusOK {
				t.Fatalf("PUT sharing: %d %v", status, doc)
			}
			s.colleagueOpens(t, e)
			page := s.colleague.Get("/patients/" + s.patientID)
			if strings.Contains(page.Body, `action="/patients/`+s.patientID+`/transfer"`) || !strings.Contains(page.Body, "Only "+s.ownerName) {
				t.Errorf("the colleague's patient page offers to share or transfer, or does not say who can")
			}
			before, _ := e.Store.GetPatient(context.Background(), s.patientID)
			for _, tc := range []struct{ desc, path, email, action string }{
				{"transfer to themselves", "/transfer", s.colleagueEmail, ""},
				{"transfer to a third colleague", "/transfer", third.Email, ""},
				{"share with a third colleague", "/share", third.Email, "share"},
				{"unshare themselves", "/share", s.colleagueEmail, "unshare"},
				{"share with a bad email", "/share", "nobody@nowhere.example", "share"},
			} {
				r := s.colleague.PostForm("/patients/"+s.patientID+tc.path, url.Values{"email": {tc.email}, "action": {tc.action}})
				wantPage(t, "colleague: "+tc.desc, r, http.StatusForbidden, "Only "+s.ownerName+" can share or transfer this patient")
			}
			after, err := e.Store.GetPatient(context.Background(), s.patientID)
			if err != nil || after.OwnerID != s.ownerID || !slices.Equal(after.SharedWith, before.SharedWith) {
				t.Errorf("after refused hand-overs: owner %s shared %v (%v), want owner %s shared %v", after.OwnerID, after.SharedWith, err, s.ownerID, before.SharedWith)
			}
			s.colleagueOpens(t, e) // still works with the patient
			// The owner can.
			r := s.owner.PostForm("/patients/"+s.patientID+"/transfer", url.Values{"email": {third.Email}})
			if r.StatusCode != http.StatusSeeOther {
				t.Errorf("the owner's transfer: %d", r.StatusCode)
			}
			if p, _ := e.Store.GetPatient(context.Background(), s.patientID); p.OwnerID != third.ID {
				t.Errorf("after the owner's transfer the owner is %s, want %s", p.OwnerID, third.ID)
			}
		})
	}
}

// TestAdminAPITransfer: support transfers a patient through the admin API;
// it is audited; bad requests change nothing.
func TestAdminAPITransfer(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.Options{})
	s := newSharingSetup(t, e, "support")
	e.SeedClinic("Other Clinic", map[string]string{"stranger@other.example": ""})
	stranger, _ := e.Store.PractitionerByEmail(context.Background(), "stranger@other.example")
	path := "/admin/api/patients/" + s.patientID + "/transfer"
	for _, tc := range []struct {
		desc   string
		path   string
		body   any
		status int
	}{
		{"no body", path, nil, http.StatusBadRequest},
		{"no practitioner", path, map[string]string{}, http.StatusBadRequest},
		{"unknown field", path, map[string]string{"to": s.colleagueID}, http.StatusBadRequest},
		{"unknown patient", "/admin/api/patients/pat_nope/transfer", map[string]string{"to_practitioner_id": s.colleagueID}, http.StatusNotFound},
		{"unknown practitioner", path, map[string]string{"to_practitioner_id": "prac_nope"}, http.StatusUnprocessableEntity},
		{"another clinic's practitioner", path, map[string]string{"to_practitioner_id": stranger.ID}, http.StatusUnprocessableEntity},
		{"the owner already", path, map[string]string{"to_practitioner_id": s.ownerID}, http.StatusUnprocessableEntity},
	} {
		if status, doc := callAdminAPI(t, e, http.MethodPost, tc.path, tc.body); status != tc.status || doc["error"] == nil {
			t.Errorf("%s: %d %v, want %d with an error", tc.desc, status, doc, tc.status)
		}
	}
	if r := e.NewBrowser().Do(http.MethodPost, path, strings.NewReader(`{"to_practitioner_id":"`+s.colleagueID+`"}`), http.Header{"Content-Type": {"application/json"}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", r.StatusCode)
	}
	if p, _ := e.Store.GetPatient(context.Background(), s.patientID); p.OwnerID != s.ownerID {
		t.Fatalf("a refused request changed the owner to %s", p.OwnerID)
	}
	status, doc := callAdminAPI(t, e, http.MethodPost, path, map[string]string{"to_practitioner_id": s.colleagueID})
	if status != http.StatusOK || doc["owner_id"] != s.colleagueID || doc["previous_owner_id"] != s.ownerID {
		t.Fatalf("transfer: %d %v", status, doc)
	}
	s.colleagueOpens(t, e)
	audit, err := e.Store.AuditOf(context.Background(), s.patientID, 0)
	if err != nil || !slices.ContainsFunc(audit, func(a store.AuditEntry) bool {
		return a.Op == "patient.transferred" && a.Detail == "to "+s.colleagueID+" from "+s.ownerID+" by support"
	}) {
		t.Errorf("audit after the transfer: %+v (%v), want the support transfer", audit, err)
	}
}
