package store_test

import (
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// TestNothingSensitiveInRedis writes every kind of record, then reads every
// key and value in the database and looks for the secrets and patient
// details in them.
func TestNothingSensitiveInRedis(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.subscription(t, "Clinic")
	const (
		password   = "Sup3rSecretPassw0rd"
		clinikoKey = "MS0xNzQ2NTI5NDYzNzI5MDA4NzctWkFLQ0tLeW91Zm91bmRtZQ-au1"
		first      = "Zoëbelline"
		last       = "O'Brienovich"
		email      = "zoebelline.obrien@example.org"
		mobile     = "+61 400 987 654"
		rawDOB     = "1985-13-45"
	)
	pr, err := b.store.CreatePractitioner(b.ctx, store.NewPractitioner{
		SubscriptionID: sub.ID, Email: "doc@example.com", Name: "Doc", Password: password,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Authenticate(b.ctx, "doc@example.com", password+"x", "10.0.0.1"); err == nil {
		t.Fatal("wrong password accepted")
	}
	token, _, err := b.store.CreateSession(b.ctx, pr.ID, "10.0.0.1", "Firefox")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.SetClinikoKey(b.ctx, pr.ID, clinikoKey, store.ClinikoUser{ID: "1", Shard: "au1"}); err != nil {
		t.Fatal(err)
	}
	p, _, err := b.store.ImportPatient(b.ctx, sub.ID, "au1", "836447129235883061", pr.ID, store.Patient{
		FirstName: first, LastName: last, Email: email, Mobile: mobile,
		BirthYearStatus: pmsbridge.BirthYearInvalid, BirthYearRaw: rawDOB,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.store.Audit(b.ctx, store.AuditEntry{PractitionerID: pr.ID, PatientID: p.ID, Op: "cliniko.get_patient", Status: 200}); err != nil {
		t.Fatal(err)
	}
	prg, _, err := b.store.CreateProgramme(b.ctx, programmeFor(p, "Knee"))
	must(t, err)
	msg, _, err := b.store.RequestMessage(b.ctx, store.Message{ProgrammeID: prg.ID, Version: 1, PatientID: p.ID,
		Channel: pmsbridge.ChannelSMS, Trigger: store.TriggerResend, RequestedBy: pr.ID, To: "+61 4** *** 654"})
	must(t, err)
	_, err = b.store.StartMessageAttempt(b.ctx, msg.ID, "+61 4** *** 654")
	must(t, err)
	_, err = b.store.MessageSent(b.ctx, msg.ID, "SM0123456789abcdef0123456789abcdef")
	must(t, err)

	secrets := []string{password, clinikoKey, token, first, last, email, mobile, "61400987654", rawDOB, "Zo\\u00eb", prg.Code}
	keys, err := b.rdb.Keys(b.ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var texts []string
		texts = append(texts, k)
		switch typ := b.rdb.Type(b.ctx, k).Val(); typ {
		case "string":
			texts = append(texts, b.rdb.Get(b.ctx, k).Val())
		case "hash":
			for f, v := range b.rdb.HGetAll(b.ctx, k).Val() {
				texts = append(texts, f, v)
			}
		case "set":
			texts = append(texts, b.rdb.SMembers(b.ctx, k).Val()...)
		case "zset":
			texts = append(texts, b.rdb.ZRange(b.ctx, k, 0, -1).Val()...)
		case "list":
			texts = append(texts, b.rdb.LRange(b.ctx, k, 0, -1).Val()...)
		default:
			t.Errorf("key %s has unexpected type %s", k, typ)
		}
		texts = append(texts, b.rdb.Dump(b.ctx, k).Val())
		for _, text := range texts {
			for _, secret := range secrets {
				if strings.Contains(strings.ToLower(text), strings.ToLower(secret)) {
					t.Errorf("key %s holds a secret or patient detail (%.6s…)", k, secret)
				}
			}
		}
	}
}
