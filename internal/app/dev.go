package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/physitrack/pmsbridge/cliniko/sandbox"
	"github.com/physitrack/pmsbridge/config"
	"github.com/physitrack/pmsbridge/mail/mailtest"
	"github.com/physitrack/pmsbridge/sms/twiliotest"
	"github.com/physitrack/pmsbridge/store"
	"github.com/redis/go-redis/v9"
)

// Demo logins of dev mode.
const (
	DemoEmail             = "demo@clinic.example"
	DemoPassword          = "demo-password"
	DemoColleagueEmail    = "colleague@clinic.example"
	DemoColleaguePassword = "colleague-password"
)

// Demo is the demo data that dev mode seeds.
type Demo struct {
	SubscriptionID string
	PractitionerID string
	ColleagueID    string
}

// DevConfig is the configuration of `pmsbridge dev` with no set-up: its
// defaults, under the file, PMSBRIDGE_* variables and flags like every
// command's. Secrets are made fresh for each start (nothing is kept
// anyway). The keys of DevFixed are not used.
func DevConfig(addr string) config.Config {
	c := config.Config{
		Region:   "au",
		HTTP:     config.HTTP{Addr: addr, ExtraHosts: []string{"127.0.0.1", "localhost"}},
		Cliniko:  config.Cliniko{UserAgent: "pmsbridge dev (dev@pmsbridge.example)"},
		Secrets:  config.Secrets{EncryptionKey: randomB64(32)},
		Webhooks: config.Webhooks{Secret: "dev-webhook-secret-" + randomHex(8)},
		Admin:    config.Admin{Token: "dev-admin-token-" + randomHex(8)},
		Log:      config.Log{Format: "text", Level: "info"},
	}
	c.PublicURL = "http://localhost"
	return c.WithDefaults()
}

// DevFixed lists the keys dev mode sets itself whatever the configuration
// says, with what it uses instead (for --print-config).
var DevFixed = map[string]string{
	"redis.url":              "(not used: dev runs its own in-memory Redis)",
	"cliniko.base_url":       "(not used: dev runs its own Cliniko sandbox)",
	"public_url":             "(not used: dev answers on http://localhost:<port of http.addr>)",
	"mail.smtp_url":          "(not used: dev runs its own SMTP server; see the email outbox)",
	"mail.from":              "(not used: " + devMailFrom + ")",
	"sms.twilio_account_sid": "(not used: dev runs its own Twilio sandbox; see the SMS outbox)",
	"sms.twilio_auth_token":  "(not used: the sandbox's)",
	"sms.from":               "(not used: " + twiliotest.DemoFrom + ")",
	"sms.twilio_base_url":    "(not used: the sandbox's address)",
}

// devMailFrom is the sender of dev mode's code emails (each shows the
// clinic's name).
const devMailFrom = "pmsbridge dev <codes@dev.pmsbridge.example>"

// Dev mode's outbox pages, on the app's own address.
const (
	DevEmailOutboxPath = "/dev/outbox/email"
	DevSMSOutboxPath   = "/dev/outbox/sms"
)

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// startDevServices starts the embedded Redis and the Cliniko sandbox.
func (m *Main) startDevServices() error {
	m.mini = miniredis.NewMiniRedis()
	// asynq relies on keys expiring as time passes.
	m.mini.ClockTTL(true)
	if err := m.mini.Start(); err != nil {
		return fmt.Errorf("start embedded redis: %w", err)
	}
	addr := m.mini.Addr()
	m.dial = func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: addr}) }
	m.rdb = m.dial()
	m.sandbox = sandbox.NewDemo()
	m.cfg.Cliniko.BaseURL = m.sandbox.BaseURL()
	// An SMTP server that offers STARTTLS like a submission server, and
	// the Twilio sandbox: codes go to their outboxes, nowhere else.
	var err error
	if m.devMail, err = mailtest.New(mailtest.WithSTARTTLS()); err != nil {
		return fmt.Errorf("start embedded smtp server: %w", err)
	}
	m.cfg.Mail = config.Mail{SMTPURL: m.devMail.URL(), From: devMailFrom}
	m.devSMS = twiliotest.New()
	m.cfg.SMS = config.SMS{TwilioAccountSID: m.devSMS.AccountSID(), TwilioAuthToken: m.devSMS.AuthToken(),
		From: twiliotest.DemoFrom, TwilioBaseURL: m.devSMS.URL()}
	return nil
}

// devOutboxes serves the outbox pages of the embedded SMTP server and the
// Twilio sandbox next to the app (dev mode only).
func (m *Main) devOutboxes(app http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(DevEmailOutboxPath, m.devMail.Handler())
	mux.Handle(DevSMSOutboxPath, m.devSMS.OutboxHandler())
	mux.Handle("/", app)
	return mux
}

// seedDemo makes the demo clinic: a subscription, the demo practitioner with
// the sandbox's demo Cliniko key saved, and a colleague who does not share.
func seedDemo(ctx context.Context, st *store.Store) (*Demo, error) {
	sub, err := st.CreateSubscription(ctx, "Demo Physio Clinic")
	if err != nil {
		return nil, err
	}
	p, err := st.CreatePractitioner(ctx, store.NewPractitioner{SubscriptionID: sub.ID, Email: DemoEmail, Name: "Dr Demo Practitioner", Password: DemoPassword})
	if err != nil {
		return nil, err
	}
	col, err := st.CreatePractitioner(ctx, store.NewPractitioner{SubscriptionID: sub.ID, Email: DemoColleagueEmail, Name: "Priya Raman", Password: DemoColleaguePassword})
	if err != nil {
		return nil, err
	}
	// The demo keys' Cliniko account, as saving them on the settings page
	// records it: the sandbox's demo clinic (au1, Australia/Sydney).
	acct := store.NewClinikoAccount("au1", []store.ClinikoBusiness{{ID: sandbox.DemoBusinessID,
		Name: "Demo Physio Clinic", CountryCode: "AU", TimeZone: "Australia/Sydney"}}, time.Now())
	if err := st.SetClinikoKey(ctx, p.ID, sandbox.DemoAdminKey, store.ClinikoUser{ID: sandbox.DemoAdminUserID, Name: "Dr Demo Practitioner", Email: DemoEmail, Role: "administrator", Shard: "au1", Account: acct}); err != nil {
		return nil, err
	}
	if err := st.SetClinikoKey(ctx, col.ID, sandbox.DemoPractitionerKey, store.ClinikoUser{ID: "2", Name: "Priya Raman", Role: "practitioner", Shard: "au1", Account: acct}); err != nil {
		return nil, err
	}
	if _, err := st.AdoptClinikoAccount(ctx, sub.ID, acct); err != nil {
		return nil, err
	}
	return &Demo{SubscriptionID: sub.ID, PractitionerID: p.ID, ColleagueID: col.ID}, nil
}

func (m *Main) printDevBanner() {
	if m.url == "" {
		return
	}
	var b strings.Builder
	line := strings.Repeat("─", 72)
	fmt.Fprintf(&b, "\n%s\n pmsbridge dev is running (embedded Redis, Cliniko sandbox, SMTP server, Twilio sandbox, demo data)\n%s\n", line, line)
	fmt.Fprintf(&b, " App:              %s\n", m.url)
	fmt.Fprintf(&b, "   log in as       %s / %s\n", DemoEmail, DemoPassword)
	fmt.Fprintf(&b, "   or colleague    %s / %s\n", DemoColleagueEmail, DemoColleaguePassword)
	fmt.Fprintf(&b, " Cliniko sandbox:  %s\n", m.sandbox.URL())
	fmt.Fprintf(&b, "   open a patient there and press \"Open in pmsbridge\"\n")
	fmt.Fprintf(&b, "   demo Cliniko API key: %s\n", sandbox.DemoAdminKey)
	fmt.Fprintf(&b, " Email outbox:     %s%s  (codes sent by email; SMTP server %s)\n", m.url, DevEmailOutboxPath, m.devMail.Addr())
	fmt.Fprintf(&b, " SMS outbox:       %s%s  (codes sent by SMS; Twilio sandbox %s)\n", m.url, DevSMSOutboxPath, m.devSMS.URL())
	fmt.Fprintf(&b, " Admin:            %s/admin/  (token %s)\n", m.url, m.cfg.Admin.Token)
	fmt.Fprintf(&b, " Webhook secret:   %s\n", m.cfg.Webhooks.Secret)
	fmt.Fprintf(&b, " Health:           %s/healthz\n", m.url)
	fmt.Fprintf(&b, " Support CLI, from another terminal in this folder:\n")
	fmt.Fprintf(&b, "   export PMSBRIDGE_REGION=au PMSBRIDGE_REDIS_URL=redis://%s/0 PMSBRIDGE_CLINIKO_USER_AGENT='%s' PMSBRIDGE_SECRETS_ENCRYPTION_KEY=%s\n",
		m.mini.Addr(), m.cfg.Cliniko.UserAgent, m.cfg.Secrets.EncryptionKey)
	fmt.Fprintf(&b, "   go run ./cmd/pmsbridge jobs failed     (or: jobs stats, jobs show ID, jobs replay ID)\n")
	fmt.Fprintf(&b, " Nothing is kept after you stop it (Ctrl-C).\n%s\n\n", line)
	fmt.Fprint(m.opts.Out, b.String())
}
