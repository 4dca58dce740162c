package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/physitrack/pmsbridge"
	"golang.org/x/text/unicode/norm"
)

// How a programme version's PDF appears in the patient's Cliniko files: a
// file named after the programme that a front desk can read, a plain
// description, and at the end of the description a short reference that
// makes the upload happen exactly once (a retry lists the patient's
// attachments and finds its own by it, for Cliniko has no idempotency
// keys).

// AttachmentMarker is the reference at the end of the description of
// programme programmeID's version's attachment: "(ref 3f9a0c1b.2)" — a hash
// of the programme id and the version. Its closing parenthesis ends it, so
// version 2's never matches inside version 21's.
func AttachmentMarker(programmeID string, version int) string {
	h := sha256.Sum256([]byte(programmeID))
	return "(ref " + hex.EncodeToString(h[:4]) + "." + strconv.Itoa(version) + ")"
}

// LegacyAttachmentMarker is the marker that versions before 2026-11 put in
// the description ("[pmsbridge prg_… v2]"): an upload still recognises it,
// so that an upgrade never sends a second copy of a version sent before.
func LegacyAttachmentMarker(programmeID string, version int) string {
	return fmt.Sprintf("[pmsbridge %s v%d]", programmeID, version)
}

// IsAttachmentOf reports whether a Cliniko attachment's description marks
// it as the PDF of programme programmeID's version (either marker).
func IsAttachmentOf(description, programmeID string, version int) bool {
	return strings.Contains(description, AttachmentMarker(programmeID, version)) ||
		strings.Contains(description, LegacyAttachmentMarker(programmeID, version))
}

// maxDescription is Cliniko's limit for an attachment's description.
const maxDescription = 255

// AttachmentDescription is the description of a programme version's
// attachment: what it is in plain words, then the marker. Dates are in the
// clinic's format. A long title is cut so that the marker always fits.
func AttachmentDescription(prog pmsbridge.Programme, clock pmsbridge.ClinicTime) string {
	marker := AttachmentMarker(prog.ID, prog.Version)
	tail := fmt.Sprintf(", version %d", prog.Version)
	if prog.StartsOn != "" {
		tail += ", starts " + clock.Day(prog.StartsOn)
	}
	tail += ". " + marker
	const head = "Home exercise programme: "
	title := []rune(strings.Join(strings.Fields(prog.Title), " "))
	if room := maxDescription - len([]rune(head)) - len([]rune(tail)); len(title) > room {
		title = append(title[:max(0, room-1)], '…')
	}
	return head + string(title) + tail
}

// maxTitleInName bounds the title's part of a file name.
const maxTitleInName = 80

// PDFFilename is the file name of a programme version's PDF, in the
// patient's Cliniko files and for the download in the app: the title, the
// version and the start date — "Knee rehab - week 1 (v2) 2026-11-30.pdf".
// Only letters a–z, digits, spaces, '-', '_' and parentheses are used
// (accents are dropped, punctuation between words and dashes become
// " - ", anything else goes); no patient detail is ever in it.
func PDFFilename(prog pmsbridge.Programme) string {
	title := safeTitle(prog.Title)
	if title == "" {
		title = "Exercise programme"
	}
	name := title + " (v" + strconv.Itoa(max(prog.Version, 1)) + ")"
	if isISODate(prog.StartsOn) {
		name += " " + prog.StartsOn
	}
	return name + ".pdf"
}

// safeTitle reduces a title to the file name's characters.
func safeTitle(s string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			// an accent, decomposed from its letter: drop it
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '(', r == ')':
			b.WriteRune(r)
		case r == 'ß':
			b.WriteString("ss")
		case r == '&' || r == '+':
			b.WriteString(" and ")
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		case r == ',' || r == ';' || r == ':' || r == '/' || r == '\\' || r == '|' || unicode.Is(unicode.Pd, r):
			b.WriteString(" - ")
		}
	}
	// Collapse spaces and runs of separators; no separator at either end.
	var parts []string
	for _, f := range strings.Fields(b.String()) {
		if f == "-" && (len(parts) == 0 || parts[len(parts)-1] == "-") {
			continue
		}
		parts = append(parts, f)
	}
	for len(parts) > 0 && parts[len(parts)-1] == "-" {
		parts = parts[:len(parts)-1]
	}
	out := strings.Join(parts, " ")
	if len(out) > maxTitleInName {
		out = strings.TrimRight(strings.TrimSuffix(strings.TrimSpace(out[:maxTitleInName]), " -"), " ")
	}
	return out
}

func isISODate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i, r := range s {
		if i != 4 && i != 7 && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
