package bridge

import (
	"bytes"
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
	"github.com/physitrack/pmsbridge/flows"
)

// webhookMaxBody caps the webhook's body.
const webhookMaxBody = 1 << 20

// SignatureHeader is the header that carries the webhook's signature.
const SignatureHeader = "Pmsbridge-Signature"

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

// platformEvent is the flows' view of a signed event.
func (ev WebhookEvent) platformEvent(signedAt time.Time) flows.PlatformEvent {
	out := flows.PlatformEvent{ID: ev.ID, Type: ev.Type, SignedAt: signedAt}
	if wp := ev.Data.Programme; wp != nil {
		out.Programme = &flows.PlatformProgramme{PatientID: wp.PatientID, PractitionerID: wp.PractitionerID,
			Assignment: flows.Assignment{ProgrammeID: wp.ID, Version: wp.Version, Title: wp.Title, StartsOn: wp.StartsOn,
				Notes: wp.Notes, Exercises: wp.Exercises}}
	}
	return out
}

func webhookError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"status": "rejected", "error": msg})
}

// webhook is POST /webhooks/programmes, in convoy's order: limit the body,
// read the raw bytes, verify the HMAC over them, parse; then the flow
// accepts the event once per event id and queues the upload, with no
// Cliniko call inside the request.
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
	switch res, err := s.flows.AcceptEvent(r.Context(), ev.platformEvent(signedAt)); {
	case err != nil:
		s.errorJSON(w, r, err, "status", "rejected")
	case res == flows.AcceptedDuplicate:
		writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate"})
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
	}
}
