package pdf

import (
	_ "embed"
	"fmt"
	"unicode"
)

// The fonts are shipped inside the binary so that rendering never depends on
// what is installed on the host. Their licences are next to them in fonts/:
// DejaVu (Bitstream Vera licence), Nanum Gothic (SIL OFL 1.1) and Droid Sans
// Fallback (Apache 2.0) all allow redistribution.
var (
	//go:embed fonts/DejaVuSans.ttf
	dejaVuSansTTF []byte
	//go:embed fonts/NanumGothic.ttf
	nanumGothicTTF []byte
	//go:embed fonts/DroidSansFallbackFull.ttf
	droidSansFallbackTTF []byte
)

// Face indexes, in the order fonts are tried for a rune.
const (
	faceDejaVu = iota // Latin, Greek, Cyrillic, Arabic, Hebrew, punctuation
	faceNanum         // Hangul
	faceDroid         // Chinese and Japanese
	numFaces
)

// face is one embedded font: its gofpdf family name, its file and the runes
// it has glyphs for.
type face struct {
	family string
	font   *sfnt
	cov    *coverage
}

func loadFaces() ([numFaces]*face, error) {
	var faces [numFaces]*face
	for i, f := range []struct {
		family string
		ttf    []byte
	}{
		faceDejaVu: {"dejavu", dejaVuSansTTF},
		faceNanum:  {"nanum", nanumGothicTTF},
		faceDroid:  {"droid", droidSansFallbackTTF},
	} {
		font, err := parseSFNT(f.ttf)
		if err != nil {
			return faces, fmt.Errorf("font %s: %w", f.family, err)
		}
		faces[i] = &face{family: f.family, font: font, cov: font.coverage()}
	}
	return faces, nil
}

// faceFor returns the face that draws r, or -1 when no embedded font has it.
// DejaVu Sans comes first because it draws Latin, Greek and Cyrillic best and
// is always loaded. Hangul goes to Nanum Gothic, which has every syllable;
// other CJK goes to Droid Sans Fallback, so that Chinese and Japanese text is
// drawn in one consistent design even where Nanum also has the ideograph.
func (r *Renderer) faceFor(ru rune) int {
	switch {
	case r.faces[faceDejaVu].cov.has(ru):
		return faceDejaVu
	case isHangul(ru) && r.faces[faceNanum].cov.has(ru):
		return faceNanum
	case r.faces[faceDroid].cov.has(ru):
		return faceDroid
	case r.faces[faceNanum].cov.has(ru):
		return faceNanum
	}
	return -1
}

func isHangul(r rune) bool { return unicode.Is(unicode.Hangul, r) }

// breaksAnywhere reports whether a line may break before and after r without a
// space: Chinese and Japanese text has no spaces between words.
func breaksAnywhere(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana) ||
		(r >= 0x3000 && r <= 0x303F) || // CJK punctuation
		(r >= 0xFF00 && r <= 0xFFEF) // full-width forms
}
