package bridge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// Webhook limits.
const (
	webhookMaxBody   = 1 << 20
	webhookTolerance = 5 * time.Minute
	webhookEventTTL  = 30 * 24 * time.Hour
	// webhookClaimTTL is how long an event id is held before its programme
	// is safely stored; a redelivery meanwhile is a duplicate only once the
	// programme is stored (eventStored), so a delivery cut off half-way
	// (a crash, a Redis failover) does not swallow the event.
	webhookClaimTTL = 2 * time.Minute
	// webhookWorkTimeout bounds the work after the event is claimed, which
	// does not stop when the caller hangs up.
	webhookWorkTimeout = 10 * time.Second
	SignatureHeader    = "Pmsbridge-Signature"
)

// Sign returns the Pmsbridge-Signature header value for body at time t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// verifySignature checks the header against the raw body; it returns the
// signed time.
func verifySignature(secret, header string, body []byte) (time.Time, bool) {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return time.Time{}, false
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}

// WebhookEvent is the body of POST /webhooks/programmes.
type WebhookEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	CreatedAt string `json:"created_at"`
	Data      struct {
		Programme *webhookProgramme `json:"programme"`
	} `json:"data"`
}

type webhookProgramme struct {
	ID             string               `json:"id"`
	Version        int                  `json:"version"`
	PatientID      string               `json:"patient_id"`
	PractitionerID string               `json:"practitioner_id"`
	Title          string               `json:"title"`
	StartsOn       string               `json:"starts_on"`
	Notes          string               `json:"notes"`
	Exercises      []pmsbridge.Exercise `json:"exercises"`
}

func webhookError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"status": "rejected", "error": msg})
}

// webhook is POST /webhooks/programmes: limit the body, read the raw bytes,
// verify the HMAC over them, parse, then accept once per event id and queue
// the upload — with no Cliniko call inside the request.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if s.cfg.WebhookSecret == "" {
		webhookError(w, http.StatusServiceUnavailable, "the webhook is not configured (webhooks.secret)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhookMaxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		webhookError(w, http.StatusRequestEntityTooLarge, "body over 1 MiB")
		return
	} else if err != nil {
		webhookError(w, http.StatusBadRequest, "body could not be read")
		return
	}
	signedAt, ok := verifySignature(s.cfg.WebhookSecret, r.Header.Get(SignatureHeader), body)
	if !ok {
		webhookError(w, http.StatusUnauthorized, "bad signature")
		return
	}
	var ev WebhookEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ev); err != nil || dec.More() {
		webhookError(w, http.StatusBadRequest, "malformed JSON")
		return
	}
	if ev.ID == "" || len(ev.ID) > 200 {
		webhookError(w, http.StatusUnprocessableEntity, "event id is missing or too long")
		return
	}
	// Once the event is claimed, the work must run to its end even if the
	// caller hangs up (a platform that timed out): stopping half-way would
	// leave the event claimed with nothing queued, and every redelivery
	// would then be answered "duplicate".
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), webhookWorkTimeout)
	defer cancel()
	// The event id decides duplicates, whatever the signature time.
	first, err := s.deps.Store.ClaimEvent(ctx, "programmes:"+ev.ID, webhookClaimTTL)
	if err != nil {
		webhookError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	if !first {
		switch stored, err := s.eventStored(ctx, ev); {
		case err != nil:
			webhookError(w, http.StatusServiceUnavailable, "try again")
			return
		case stored:
			writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate"})
			return
		}
		// Claimed by a delivery whose work has not stored the programme:
		// still under way, or cut off (Redis failed over under it, so its
		// release failed too). Do the work; it is idempotent.
	}
	release := func() {
		if err := s.deps.Store.ReleaseEvent(ctx, "programmes:"+ev.ID); err != nil {
			s.log.WarnContext(ctx, "release webhook event", "err", err)
		}
	}
	if d := s.cfg.Now().Sub(signedAt); d > webhookTolerance || d < -webhookTolerance {
		release()
		webhookError(w, http.StatusUnauthorized, "stale signature timestamp (older than 5 minutes)")
		return
	}
	status, prog, patient, msg := s.webhookProgramme(ctx, ev)
	if status != 0 {
		release()
		webhookError(w, status, msg)
		return
	}
	if _, err := s.createAndUpload(ctx, prog, patient); err != nil {
		release()
		if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
			webhookError(w, http.StatusUnprocessableEntity, "programme version not accepted: "+err.Error())
			return
		}
		s.log.ErrorContext(ctx, "webhook", "request_id", requestID(ctx), "err", err)
		webhookError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	if err := s.deps.Store.ConfirmEvent(ctx, "programmes:"+ev.ID, webhookEventTTL); err != nil {
		// The programme is stored and queued; a redelivery would find the
		// same version and queue nothing new, so this is not a failure.
		s.log.WarnContext(ctx, "confirm webhook event", "request_id", requestID(ctx), "err", err)
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
}

// eventStored reports whether the programme version of an event is
// stored and, when redis.ack_replicas asks for it, on the replicas: only
// then is a repeated event a duplicate.
func (s *Server) eventStored(ctx context.Context, ev WebhookEvent) (bool, error) {
	wp := ev.Data.Programme
	if wp == nil || !validProgrammeID(wp.ID) || wp.Version < 1 {
		return true, nil // rejected when it came first; nothing to store
	}
	if _, err := s.deps.Store.GetProgramme(ctx, wp.ID, wp.Version); errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, s.deps.Store.Durable(ctx)
}

// webhookProgramme validates the event's programme; a non-zero status means
// rejected with msg.
func (s *Server) webhookProgramme(ctx context.Context, ev WebhookEvent) (int, pmsbridge.Programme, store.Patient, string) {
	var none pmsbridge.Programme
	if ev.Type != "programme.assigned" {
		return http.StatusUnprocessableEntity, none, store.Patient{}, "unknown event type " + strconv.Quote(ev.Type)
	}
	wp := ev.Data.Programme
	if wp == nil || wp.ID == "" || wp.Version < 1 || wp.PatientID == "" || wp.PractitionerID == "" {
		return http.StatusUnprocessableEntity, none, store.Patient{}, "data.programme needs id, version (1 or more), patient_id and practitioner_id"
	}
	if !validProgrammeID(wp.ID) {
		return http.StatusUnprocessableEntity, none, store.Patient{}, "programme id must be 1-64 letters, digits, '_' or '-'"
	}
	// Only a record that is not there is the sender's mistake (422, not
	// retried); failing to read one is ours (503, delivered again later).
	patient, err := s.deps.Store.GetPatient(ctx, wp.PatientID)
	if errors.Is(err, store.ErrNotFound) {
		return http.StatusUnprocessableEntity, none, patient, "unknown patient"
	} else if err != nil {
		return s.webhookTryAgain(ctx, err)
	}
	pr, err := s.deps.Store.GetPractitioner(ctx, wp.PractitionerID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !pr.Active {
		return http.StatusUnprocessableEntity, none, patient, "unknown or inactive practitioner"
	} else if err != nil {
		return s.webhookTryAgain(ctx, err)
	}
	acc, err := s.deps.Store.CanOpen(ctx, pr, patient)
	if err != nil {
		return s.webhookTryAgain(ctx, err)
	}
	if !acc.Allowed {
		return http.StatusUnprocessableEntity, none, patient, "the practitioner may not open this patient"
	}
	prog := pmsbridge.Programme{ID: wp.ID, Version: wp.Version, PatientID: patient.ID, PractitionerID: pr.ID,
		Title: strings.TrimSpace(wp.Title), StartsOn: wp.StartsOn, Notes: strings.TrimSpace(wp.Notes), Exercises: wp.Exercises, CreatedAt: s.cfg.Now().UTC()}
	if prog.StartsOn == "" {
		prog.StartsOn = s.cfg.Now().UTC().Format("2006-01-02")
	}
	if p := programmeProblems(prog); len(p) > 0 {
		return http.StatusUnprocessableEntity, none, patient, strings.Join(p, " ")
	}
	return 0, prog, patient, ""
}

// webhookTryAgain logs err (never shown) and rejects the event for now.
func (s *Server) webhookTryAgain(ctx context.Context, err error) (int, pmsbridge.Programme, store.Patient, string) {
	s.log.ErrorContext(ctx, "webhook", "request_id", requestID(ctx), "err", err)
	return http.StatusServiceUnavailable, pmsbridge.Programme{}, store.Patient{}, "try again"
}

func validProgrammeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
