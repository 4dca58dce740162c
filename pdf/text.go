package pdf

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jung-kurt/gofpdf"
	"golang.org/x/text/unicode/norm"
)

// gofpdf's MultiCell draws a whole string in one font, which cannot show a
// Greek name next to a Chinese one. So text is laid out here: each string is
// cut into runs of runes that one font draws (the first font with the glyph),
// runs are grouped into words (Chinese and Japanese characters are each a
// word, since those scripts break lines anywhere), and words are filled into
// lines greedily. Lines are drawn run by run with Fpdf.Text.
//
// Arabic and Hebrew get only what a patient needs to recognise the words:
// every run of right-to-left words on a line is drawn in right-to-left order
// (see visualOrder), but letters keep their isolated forms: there is no
// shaping (joining forms, ligatures) and no full bidirectional algorithm, so
// digits inside Arabic text come out in the wrong order. Text extraction
// (pdftotext) returns the words in their logical order.

// style is how a piece of text looks.
type style struct {
	size  float64 // points
	bold  bool    // drawn with a stroke around the glyphs (see drawLine)
	color rgb
	lead  float64 // line height as a multiple of size; 0 means 1.35
}

type rgb struct{ r, g, b int }

func (s style) lineHeight() float64 {
	lead := s.lead
	if lead == 0 {
		lead = 1.35
	}
	return s.size * lead * ptToMM
}

const ptToMM = 25.4 / 72

// run is text drawn in one face.
type run struct {
	face int
	text string
	w    float64 // mm, at the style's size
}

// word is an unbreakable piece of a line; space says whether a space comes
// before it.
type word struct {
	runs  []run
	w     float64
	space bool
}

// line is one laid-out line of text.
type line struct {
	words []word
	w     float64
}

// clean prepares user text for drawing: NFC so that "e" + combining diaeresis
// becomes the "ë" glyph, CRLF to LF, tabs to spaces, other control characters
// dropped, and runes no font has replaced with U+FFFD so that nothing is lost
// silently.
func (r *Renderer) clean(s string) string {
	s = norm.NFC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, ru := range s {
		switch {
		case ru == '\n':
			b.WriteRune(ru)
		case ru == '\t':
			b.WriteByte(' ')
		case ru == '\r' || unicode.IsControl(ru):
		case unicode.IsSpace(ru):
			b.WriteByte(' ')
		case r.faceFor(ru) < 0:
			b.WriteRune(replacementRune)
		default:
			b.WriteRune(ru)
		}
	}
	return b.String()
}

// replacementRune stands in for a character that no embedded font can draw.
const replacementRune = '\uFFFD'

// measurer measures text with the fonts registered in one document.
type measurer struct {
	p     *gofpdf.Fpdf
	faces *[numFaces]*face
	cache map[widthKey]float64
}

type widthKey struct {
	face int
	size float64
	r    rune
}

// width returns the advance of s drawn in face at size points, in mm.
func (m *measurer) width(face int, size float64, s string) float64 {
	w := 0.0
	for _, ru := range s {
		k := widthKey{face, size, ru}
		rw, ok := m.cache[k]
		if !ok {
			m.p.SetFont(m.faces[face].family, "", size)
			var buf [utf8.UTFMax]byte
			n := utf8.EncodeRune(buf[:], ru)
			rw = m.p.GetStringWidth(string(buf[:n]))
			m.cache[k] = rw
		}
		w += rw
	}
	return w
}

// words cuts one paragraph (no newlines) into words of single-face runs.
func (r *Renderer) words(m *measurer, st style, para string) []word {
	var out []word
	var cur word
	var runText strings.Builder
	runFace := -1
	space := false

	flushRun := func() {
		if runText.Len() == 0 {
			return
		}
		t := runText.String()
		w := m.width(runFace, st.size, t)
		cur.runs = append(cur.runs, run{face: runFace, text: t, w: w})
		cur.w += w
		runText.Reset()
	}
	flushWord := func() {
		flushRun()
		if len(cur.runs) > 0 {
			cur.space = space
			out = append(out, cur)
			space = false
		}
		cur = word{}
	}
	for _, ru := range para {
		if ru == ' ' {
			flushWord()
			space = len(out) > 0
			continue
		}
		f := r.faceFor(ru)
		if breaksAnywhere(ru) {
			flushWord()
			runFace = f
			runText.WriteRune(ru)
			flushWord()
			continue
		}
		if f != runFace {
			flushRun()
			runFace = f
		}
		runText.WriteRune(ru)
	}
	flushWord()
	return out
}

// wrap lays text out in lines no wider than maxW mm. Newlines start new
// lines; an empty paragraph keeps its blank line.
func (r *Renderer) wrap(m *measurer, st style, text string, maxW float64) []line {
	var lines []line
	spaceW := m.width(faceDejaVu, st.size, " ")
	for _, para := range strings.Split(text, "\n") {
		ws := r.words(m, st, para)
		cur := line{}
		for _, w := range ws {
			gap := 0.0
			if w.space && len(cur.words) > 0 {
				gap = spaceW
			}
			if len(cur.words) > 0 && cur.w+gap+w.w > maxW {
				lines = append(lines, cur)
				cur, gap = line{}, 0
			}
			if w.w > maxW { // a word longer than the line: cut it by runes
				for _, piece := range splitWord(m, st, w, maxW) {
					if len(cur.words) > 0 {
						lines = append(lines, cur)
					}
					cur = line{words: []word{piece}, w: piece.w}
				}
				continue
			}
			w.space = gap > 0
			cur.words = append(cur.words, w)
			cur.w += gap + w.w
		}
		lines = append(lines, cur)
	}
	return lines
}

// splitWord cuts an over-long word (a URL, say) into pieces that fit.
func splitWord(m *measurer, st style, w word, maxW float64) []word {
	var out []word
	cur := word{}
	for _, rn := range w.runs {
		for _, ru := range rn.text {
			s := string(ru)
			rw := m.width(rn.face, st.size, s)
			if cur.w+rw > maxW && cur.w > 0 {
				out = append(out, cur)
				cur = word{}
			}
			if n := len(cur.runs); n > 0 && cur.runs[n-1].face == rn.face {
				cur.runs[n-1].text += s
				cur.runs[n-1].w += rw
			} else {
				cur.runs = append(cur.runs, run{face: rn.face, text: s, w: rw})
			}
			cur.w += rw
		}
	}
	if cur.w > 0 {
		out = append(out, cur)
	}
	return out
}

// drawLine draws one line with its left edge at x and its top at y.
//
// Bold is drawn by filling and stroking the glyph outlines (text rendering
// mode 2) rather than with a bold font file: every font registered costs
// gofpdf a few milliseconds per document, and the CJK fonts have no bold
// cut at all, so this one technique makes every script bold the same way.
func (d *drawer) drawLine(st style, ln line, x, y float64) {
	p := d.p
	baseline := y + st.lineHeight()/2 + st.size*ptToMM*0.35
	p.SetTextColor(st.color.r, st.color.g, st.color.b)
	if st.bold {
		p.SetDrawColor(st.color.r, st.color.g, st.color.b)
		p.SetLineWidth(st.size * ptToMM * 0.045)
		p.SetTextRenderingMode(2)
	}
	// Consecutive runs in one face are drawn as one string (spaces are
	// DejaVu's), which keeps the content stream small.
	spaceW := d.m.width(faceDejaVu, st.size, " ")
	ln = visualOrder(ln)
	var buf strings.Builder
	bufFace, bufX := -1, x
	flush := func() {
		if buf.Len() > 0 {
			d.setFont(bufFace, st.size)
			p.Text(bufX, baseline, buf.String())
			buf.Reset()
		}
	}
	for _, w := range ln.words {
		for i, rn := range w.runs {
			space := i == 0 && w.space
			if rn.face != bufFace || (space && rn.face != faceDejaVu) {
				flush()
				if space {
					x += spaceW
				}
				bufFace, bufX = rn.face, x
			} else if space {
				buf.WriteByte(' ')
				x += spaceW
			}
			buf.WriteString(rn.text)
			x += rn.w
		}
	}
	flush()
	if st.bold {
		p.SetTextRenderingMode(0)
	}
}

// isRTL reports whether r belongs to a right-to-left script.
func isRTL(r rune) bool {
	return (r >= 0x0590 && r <= 0x08FF) || (r >= 0xFB1D && r <= 0xFDFF) || (r >= 0xFE70 && r <= 0xFEFF)
}

// rtlWord reports whether w has right-to-left letters and no left-to-right
// ones; punctuation goes along with the letters around it.
func rtlWord(w word) bool {
	rtl := false
	for _, rn := range w.runs {
		for _, r := range rn.text {
			switch {
			case isRTL(r):
				rtl = true
			case unicode.IsLetter(r) || unicode.IsDigit(r):
				return false
			}
		}
	}
	return rtl
}

// visualOrder returns ln with each stretch of right-to-left words reversed,
// word order and letters both, so that it reads correctly from the right.
func visualOrder(ln line) line {
	out := line{w: ln.w, words: make([]word, 0, len(ln.words))}
	for i := 0; i < len(ln.words); {
		if !rtlWord(ln.words[i]) {
			out.words = append(out.words, ln.words[i])
			i++
			continue
		}
		j := i
		for j < len(ln.words) && rtlWord(ln.words[j]) {
			j++
		}
		for k := j - 1; k >= i; k-- {
			w := ln.words[k]
			// The first word drawn takes the stretch's leading space.
			rev := word{w: w.w, space: true}
			if k == j-1 {
				rev.space = ln.words[i].space
			}
			for r := len(w.runs) - 1; r >= 0; r-- {
				rn := w.runs[r]
				rs := []rune(rn.text)
				slices.Reverse(rs)
				rn.text = string(rs)
				rev.runs = append(rev.runs, rn)
			}
			out.words = append(out.words, rev)
		}
		i = j
	}
	return out
}
