package sms_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/physitrack/pmsbridge/sms"
)

func TestSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc     string
		s        string
		enc      sms.Encoding
		length   int
		segments int
	}{
		{desc: "empty", s: "", enc: sms.GSM7, length: 0, segments: 0},
		{desc: "160 plain letters", s: strings.Repeat("a", 160), enc: sms.GSM7, length: 160, segments: 1},
		{desc: "161 plain letters", s: strings.Repeat("a", 161), enc: sms.GSM7, length: 161, segments: 2},
		{desc: "306 plain letters", s: strings.Repeat("a", 306), enc: sms.GSM7, length: 306, segments: 2},
		{desc: "307 plain letters", s: strings.Repeat("a", 307), enc: sms.GSM7, length: 307, segments: 3},
		{desc: "GSM accents are one septet", s: "é ü ñ ø Å Ç ß £ ¥ § ¿ ¡ Δ Ω", enc: sms.GSM7, length: 27, segments: 1},
		{desc: "extension characters are two", s: "€[]{}|^~\\", enc: sms.GSM7, length: 18, segments: 1},
		{desc: "80 euro signs fill one segment", s: strings.Repeat("€", 80), enc: sms.GSM7, length: 160, segments: 1},
		{desc: "a backtick is not GSM-7", s: "a`b", enc: sms.UCS2, length: 3, segments: 1},
		{desc: "ë is not GSM-7", s: "Zoë", enc: sms.UCS2, length: 3, segments: 1},
		{desc: "70 Chinese characters", s: strings.Repeat("中", 70), enc: sms.UCS2, length: 70, segments: 1},
		{desc: "71 Chinese characters", s: strings.Repeat("中", 71), enc: sms.UCS2, length: 71, segments: 2},
		{desc: "an emoji is two UTF-16 units", s: "ok 👍", enc: sms.UCS2, length: 5, segments: 1},
	}
	for _, tc := range tests {
		enc, n, seg := sms.Segments(tc.s)
		if enc != tc.enc || n != tc.length || seg != tc.segments {
			t.Errorf("%s: Segments = %s %d %d, want %s %d %d", tc.desc, enc, n, seg, tc.enc, tc.length, tc.segments)
		}
	}
}

var anyYear = regexp.MustCompile(`\b(19|20)\d\d\b`)

func TestCodeTextCompose(t *testing.T) {
	t.Parallel()
	const url = "https://au.physitrack.com/access"
	tests := []struct {
		desc     string
		clinic   string
		url      string
		body     string // exact body, when given
		clinicIn string // the clinic's name as it appears
		enc      sms.Encoding
		segments int
	}{
		{desc: "typical clinic: the full wording in one segment", clinic: "Harbour Physio", url: url,
			body:     "Harbour Physio: your programme code is qwertyui. Open https://au.physitrack.com/access and enter the code and your year of birth.",
			clinicIn: "Harbour Physio", enc: sms.GSM7, segments: 1},
		{desc: "long name: the shorter wording", clinic: "Northern Beaches Sports and Spinal Physiotherapy Centre", url: url,
			body:     "Northern Beaches Sports and Spinal Physiotherapy Centre: code qwertyui. Open https://au.physitrack.com/access and enter it with your year of birth.",
			clinicIn: "Northern Beaches Sports and Spinal Physiotherapy Centre", enc: sms.GSM7, segments: 1},
		{desc: "very long name: cut at a word", clinic: "The Northern Beaches Sports, Spinal and Hand Physiotherapy and Rehabilitation Centre of Excellence", url: url,
			clinicIn: "The Northern Beaches Sports, Spinal and Hand Physiotherapy", enc: sms.GSM7, segments: 1},
		{desc: "look-alikes become GSM-7", clinic: "Zoë’s Physio – Café Straße", url: url,
			clinicIn: "Zoe's Physio - Café Straße", enc: sms.GSM7, segments: 1},
		{desc: "control characters dropped", clinic: "Harbour\nPhysio\t ", url: url,
			clinicIn: "Harbour Physio:", enc: sms.GSM7, segments: 1},
		{desc: "a name outside GSM-7 makes it UCS-2, kept whole", clinic: "悉尼理疗中心", url: url,
			clinicIn: "悉尼理疗中心: your programme code is qwertyui", enc: sms.UCS2, segments: 2},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := sms.CodeText{Clinic: tc.clinic, Code: "qwertyui", AccessURL: tc.url}.Compose()
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" && got.Body != tc.body {
				t.Errorf("body\n got %q\nwant %q", got.Body, tc.body)
			}
			if !strings.Contains(got.Body, tc.clinicIn) || !strings.Contains(got.Body, "qwertyui") || !strings.Contains(got.Body, tc.url) {
				t.Errorf("body %q lacks the clinic %q, the code or the address", got.Body, tc.clinicIn)
			}
			if !strings.Contains(got.Body, "year of birth") || anyYear.MatchString(got.Body) {
				t.Errorf("body %q: want the year-of-birth line and no year", got.Body)
			}
			if got.Encoding != tc.enc || got.Segments != tc.segments {
				t.Errorf("%s in %d segments (%d units), want %s in %d: %q", got.Encoding, got.Segments, got.Length, tc.enc, tc.segments, got.Body)
			}
			if enc, n, seg := sms.Segments(got.Body); enc != got.Encoding || n != got.Length || seg != got.Segments {
				t.Errorf("Text says %s/%d/%d, Segments says %s/%d/%d", got.Encoding, got.Length, got.Segments, enc, n, seg)
			}
		})
	}
}

func TestCodeTextRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, c := range []sms.CodeText{
		{Clinic: "", Code: "qwertyui", AccessURL: "https://x/access"},
		{Clinic: "A", Code: "QWERTYUI", AccessURL: "https://x/access"},
		{Clinic: "A", Code: "qwerty", AccessURL: "https://x/access"},
		{Clinic: "A", Code: "qwertyui", AccessURL: "x/access"},
	} {
		if _, err := c.Compose(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
