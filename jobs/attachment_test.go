package jobs

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/physitrack/pmsbridge"
)

func TestPDFFilename(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc  string
		title string
		v     int
		on    string
		want  string
	}{
		{"comma between words", "Knee rehab, week 1", 2, "2026-11-30", "Knee rehab - week 1 (v2) 2026-11-30.pdf"},
		{"hyphen in a word, parentheses", "Shoulder (post-op) – phase 2", 1, "2026-01-05", "Shoulder (post-op) - phase 2 (v1) 2026-01-05.pdf"},
		{"accents dropped", "Rééducation épaule", 3, "2026-02-01", "Reeducation epaule (v3) 2026-02-01.pdf"},
		{"no letters left", "膝のリハビリ", 1, "2026-11-22", "Exercise programme (v1) 2026-11-22.pdf"},
		{"path and quotes", `../"etc"/passwd: <b>`, 1, "2026-11-22", "etc - passwd - b (v1) 2026-11-22.pdf"},
		{"no start date", "Back", 1, "next week", "Back (v1).pdf"},
		{"long", strings.Repeat("Hamstring ", 20), 1, "2026-11-22", strings.TrimSpace(strings.Repeat("Hamstring ", 8)) + " (v1) 2026-11-22.pdf"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := PDFFilename(pmsbridge.Programme{ID: "prg_x", Version: tc.v, Title: tc.title, StartsOn: tc.on})
			if got != tc.want {
				t.Errorf("PDFFilename(%q) = %q, want %q", tc.title, got, tc.want)
			}
		})
	}
}

func TestAttachmentMarker(t *testing.T) {
	t.Parallel()
	m2, m21 := AttachmentMarker("prg_a", 2), AttachmentMarker("prg_a", 21)
	if strings.Contains(m21, m2) || m2 == AttachmentMarker("prg_b", 2) {
		t.Errorf("markers %q, %q, %q are not distinct", m2, m21, AttachmentMarker("prg_b", 2))
	}
	desc := AttachmentDescription(pmsbridge.Programme{ID: "prg_a", Version: 21, Title: strings.Repeat("Very long title ", 30), StartsOn: "2026-11-22"}, pmsbridge.ClinicTime{})
	if n := utf8.RuneCountInString(desc); n > maxDescription || !strings.HasSuffix(desc, m21) {
		t.Errorf("description of %d characters %q: want at most %d, ending with %q", n, desc, maxDescription, m21)
	}
	for _, tc := range []struct {
		desc string
		want bool
	}{
		{"Home exercise programme: Knee, version 2. " + m2, true},
		{"Home exercise programme: Knee (version 2) [pmsbridge prg_a v2]", true},
		{"Home exercise programme: Knee (version 21) [pmsbridge prg_a v21]", false},
		{"Home exercise programme: Knee, version 21. " + m21, false},
		{"Referral letter", false},
	} {
		if got := IsAttachmentOf(tc.desc, "prg_a", 2); got != tc.want {
			t.Errorf("IsAttachmentOf(%q, prg_a, 2) = %v, want %v", tc.desc, got, tc.want)
		}
	}
}
