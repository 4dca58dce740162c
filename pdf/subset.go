package pdf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// gofpdf parses a whole TrueType file twice per document (once when the font
// is added, once to embed the used glyphs), and that parse costs about 10 ms
// for DejaVu Sans and 20–30 ms for each CJK font. So each document hands
// gofpdf a small font instead: sfnt.subset cuts, in well under a
// millisecond, a valid TrueType file holding only the glyphs the document
// draws, using tables parsed once per process.

// sfnt is a TrueType font parsed once: its tables and the lookups that
// subsetting needs.
type sfnt struct {
	tables    map[string][]byte
	gid       []uint16 // BMP rune -> glyph id; 0 when the font has no glyph
	loca      []uint32 // glyph id -> offset in glyf; nGlyphs+1 entries
	nGlyphs   int
	nHMetrics int
}

var be = binary.BigEndian

// parseSFNT reads the tables of a TrueType font.
func parseSFNT(ttf []byte) (*sfnt, error) {
	if len(ttf) < 12 || be.Uint32(ttf) != 0x00010000 {
		return nil, errors.New("not a TrueType font")
	}
	f := &sfnt{tables: map[string][]byte{}}
	n := int(be.Uint16(ttf[4:]))
	for i := 0; i < n; i++ {
		rec := 12 + 16*i
		if rec+16 > len(ttf) {
			return nil, errors.New("truncated table directory")
		}
		off, size := int(be.Uint32(ttf[rec+8:])), int(be.Uint32(ttf[rec+12:]))
		if off+size > len(ttf) {
			return nil, fmt.Errorf("table %q out of range", ttf[rec:rec+4])
		}
		f.tables[string(ttf[rec:rec+4])] = ttf[off : off+size]
	}
	for _, t := range []string{"head", "hhea", "maxp", "hmtx", "loca", "glyf", "cmap", "name", "OS/2", "post"} {
		if f.tables[t] == nil {
			return nil, fmt.Errorf("no %q table", t)
		}
	}
	head, hhea, maxp := f.tables["head"], f.tables["hhea"], f.tables["maxp"]
	if len(head) < 54 || len(hhea) < 36 || len(maxp) < 6 {
		return nil, errors.New("short head, hhea or maxp table")
	}
	f.nGlyphs = int(be.Uint16(maxp[4:]))
	f.nHMetrics = int(be.Uint16(hhea[34:]))
	if f.nHMetrics == 0 || len(f.tables["hmtx"]) < 4*f.nHMetrics+2*(f.nGlyphs-f.nHMetrics) {
		return nil, errors.New("short hmtx table")
	}
	loca := f.tables["loca"]
	f.loca = make([]uint32, f.nGlyphs+1)
	long := be.Uint16(head[50:]) == 1
	for g := range f.loca {
		if long {
			if 4*g+4 > len(loca) {
				return nil, errors.New("short loca table")
			}
			f.loca[g] = be.Uint32(loca[4*g:])
		} else {
			if 2*g+2 > len(loca) {
				return nil, errors.New("short loca table")
			}
			f.loca[g] = 2 * uint32(be.Uint16(loca[2*g:]))
		}
	}
	if int(f.loca[f.nGlyphs]) > len(f.tables["glyf"]) {
		return nil, errors.New("loca points past glyf")
	}
	gid, err := parseCmap4(f.tables["cmap"])
	if err != nil {
		return nil, err
	}
	f.gid = gid
	return f, nil
}

// coverage returns the runes the font has glyphs for.
func (f *sfnt) coverage() *coverage {
	var c coverage
	for r, g := range f.gid {
		if g != 0 && int(g) < f.nGlyphs {
			c.set(r)
		}
	}
	return &c
}

// glyph returns the glyf bytes of glyph g.
func (f *sfnt) glyph(g int) []byte { return f.tables["glyf"][f.loca[g]:f.loca[g+1]] }

// Composite glyph flags (TrueType glyf table).
const (
	argsAreWords   = 0x0001
	haveScale      = 0x0008
	moreComponents = 0x0020
	haveXYScale    = 0x0040
	haveTwoByTwo   = 0x0080
)

// components calls fn with the byte offset of each component glyph id in a
// composite glyph; it does nothing for a simple glyph.
func components(data []byte, fn func(off int)) {
	if len(data) < 10 || int16(be.Uint16(data)) >= 0 {
		return
	}
	p := 10
	for p+4 <= len(data) {
		flags := be.Uint16(data[p:])
		fn(p + 2)
		p += 4
		if flags&argsAreWords != 0 {
			p += 4
		} else {
			p += 2
		}
		switch {
		case flags&haveScale != 0:
			p += 2
		case flags&haveXYScale != 0:
			p += 4
		case flags&haveTwoByTwo != 0:
			p += 8
		}
		if flags&moreComponents == 0 {
			return
		}
	}
}

// subset returns a TrueType file with only the glyphs of runes (and the
// glyphs their composites use), mapped by a fresh format 4 cmap.
func (f *sfnt) subset(runes *coverage) []byte {
	// Old glyph ids to keep: .notdef, each rune's glyph, and components.
	keep := map[int]bool{0: true}
	var work []int
	var pairs []mapping // old glyph ids for now
	for _, r := range runes.String() {
		g := int(f.gid[r])
		if g == 0 || g >= f.nGlyphs {
			continue
		}
		pairs = append(pairs, mapping{r, g})
		if !keep[g] {
			keep[g] = true
			work = append(work, g)
		}
	}
	for len(work) > 0 {
		g := work[len(work)-1]
		work = work[:len(work)-1]
		data := f.glyph(g)
		components(data, func(off int) {
			c := int(be.Uint16(data[off:]))
			if c < f.nGlyphs && !keep[c] {
				keep[c] = true
				work = append(work, c)
			}
		})
	}
	olds := make([]int, 0, len(keep))
	for g := range keep {
		olds = append(olds, g)
	}
	slices.Sort(olds)
	newID := make(map[int]int, len(olds))
	for i, g := range olds {
		newID[g] = i
	}

	// glyf, loca (long offsets) and hmtx (a full metric per glyph).
	var glyf []byte
	loca := make([]byte, 0, 4*(len(olds)+1))
	hmtx := make([]byte, 0, 4*len(olds))
	oldH := f.tables["hmtx"]
	for _, g := range olds {
		loca = be.AppendUint32(loca, uint32(len(glyf)))
		start := len(glyf)
		glyf = append(glyf, f.glyph(g)...)
		data := glyf[start:]
		components(data, func(off int) {
			be.PutUint16(data[off:], uint16(newID[int(be.Uint16(data[off:]))]))
		})
		for len(glyf)%4 != 0 {
			glyf = append(glyf, 0)
		}
		if g < f.nHMetrics {
			hmtx = append(hmtx, oldH[4*g:4*g+4]...)
		} else {
			hmtx = append(hmtx, oldH[4*(f.nHMetrics-1):4*(f.nHMetrics-1)+2]...)
			p := 4*f.nHMetrics + 2*(g-f.nHMetrics)
			hmtx = append(hmtx, oldH[p:p+2]...)
		}
	}
	loca = be.AppendUint32(loca, uint32(len(glyf)))

	head := slices.Clone(f.tables["head"])
	be.PutUint32(head[8:], 0)  // checksum adjustment: not needed in a PDF
	be.PutUint16(head[50:], 1) // long loca
	hhea := slices.Clone(f.tables["hhea"])
	be.PutUint16(hhea[34:], uint16(len(olds)))
	maxp := slices.Clone(f.tables["maxp"])
	be.PutUint16(maxp[4:], uint16(len(olds)))
	// post version 3: no glyph names.
	post := make([]byte, 32)
	copy(post, f.tables["post"])
	be.PutUint32(post, 0x00030000)

	for i := range pairs {
		pairs[i].gid = newID[pairs[i].gid]
	}
	tables := map[string][]byte{
		"OS/2": f.tables["OS/2"], "cmap": buildCmap4(pairs),
		"glyf": glyf, "head": head, "hhea": hhea, "hmtx": hmtx, "loca": loca,
		"maxp": maxp, "name": f.tables["name"], "post": post,
	}
	// Hinting programs, when the font has them, go along unchanged.
	for _, t := range []string{"cvt ", "fpgm", "prep"} {
		if b := f.tables[t]; b != nil {
			tables[t] = b
		}
	}
	return assembleSFNT(tables)
}

// mapping is one rune and its glyph id in the subset.
type mapping struct {
	r   rune
	gid int
}

// buildCmap4 returns a cmap table with one Windows Unicode BMP subtable
// (format 4) for ms, which are sorted by rune. Runs of consecutive runes with
// consecutive glyph ids share a segment.
func buildCmap4(ms []mapping) []byte {
	type seg struct{ start, end, delta int }
	var segs []seg
	for _, m := range ms {
		if n := len(segs); n > 0 && int(m.r) == segs[n-1].end+1 && m.gid-int(m.r) == segs[n-1].delta {
			segs[n-1].end++
			continue
		}
		segs = append(segs, seg{int(m.r), int(m.r), m.gid - int(m.r)})
	}
	segs = append(segs, seg{0xFFFF, 0xFFFF, 1})
	n := len(segs)
	sr := 1
	for sr*2 <= n {
		sr *= 2
	}
	length := 16 + 8*n
	b := make([]byte, 0, 12+length)
	b = be.AppendUint16(b, 0)  // version
	b = be.AppendUint16(b, 1)  // one subtable
	b = be.AppendUint16(b, 3)  // Windows
	b = be.AppendUint16(b, 1)  // Unicode BMP
	b = be.AppendUint32(b, 12) // offset
	b = be.AppendUint16(b, 4)  // format
	b = be.AppendUint16(b, uint16(length))
	b = be.AppendUint16(b, 0) // language
	b = be.AppendUint16(b, uint16(2*n))
	b = be.AppendUint16(b, uint16(2*sr))
	b = be.AppendUint16(b, uint16(bitsLen(sr)-1))
	b = be.AppendUint16(b, uint16(2*n-2*sr))
	for _, s := range segs {
		b = be.AppendUint16(b, uint16(s.end))
	}
	b = be.AppendUint16(b, 0) // reserved pad
	for _, s := range segs {
		b = be.AppendUint16(b, uint16(s.start))
	}
	for _, s := range segs {
		b = be.AppendUint16(b, uint16(int16(s.delta)))
	}
	for range segs {
		b = be.AppendUint16(b, 0) // no glyph id arrays
	}
	return b
}

func bitsLen(n int) int {
	l := 0
	for n > 0 {
		l++
		n >>= 1
	}
	return l
}

// assembleSFNT writes a TrueType file from its tables, in tag order, each
// 4-byte aligned with its checksum.
func assembleSFNT(tables map[string][]byte) []byte {
	tags := make([]string, 0, len(tables))
	size := 12 + 16*len(tables)
	for t, b := range tables {
		tags = append(tags, t)
		size += (len(b) + 3) &^ 3
	}
	slices.Sort(tags)
	n := len(tags)
	sr := 1
	for sr*2 <= n {
		sr *= 2
	}
	out := make([]byte, 12+16*n, size)
	be.PutUint32(out, 0x00010000)
	be.PutUint16(out[4:], uint16(n))
	be.PutUint16(out[6:], uint16(16*sr))
	be.PutUint16(out[8:], uint16(bitsLen(sr)-1))
	be.PutUint16(out[10:], uint16(16*n-16*sr))
	for i, t := range tags {
		b := tables[t]
		rec := out[12+16*i:]
		copy(rec, t)
		be.PutUint32(rec[4:], checksum(b))
		be.PutUint32(rec[8:], uint32(len(out)))
		be.PutUint32(rec[12:], uint32(len(b)))
		out = append(out, b...)
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
	}
	return out
}

func checksum(b []byte) uint32 {
	var sum uint32
	for i := 0; i < len(b); i += 4 {
		var w [4]byte
		copy(w[:], b[i:])
		sum += be.Uint32(w[:])
	}
	return sum
}

// parseCmap4 reads the Unicode format 4 cmap subtable into a rune -> glyph
// id table. It picks the subtable the way gofpdf does (Windows Unicode BMP,
// or any Unicode-platform one). Only the BMP matters: gofpdf writes text as
// UTF-16 code units with Identity-H, so it cannot draw a rune above U+FFFF.
func parseCmap4(cmap []byte) ([]uint16, error) {
	if len(cmap) < 4 {
		return nil, errors.New("short cmap")
	}
	n := int(be.Uint16(cmap[2:]))
	sub := -1
	for i := 0; i < n; i++ {
		rec := 4 + 8*i
		if rec+8 > len(cmap) {
			return nil, errors.New("truncated cmap")
		}
		platform, encoding := be.Uint16(cmap[rec:]), be.Uint16(cmap[rec+2:])
		off := int(be.Uint32(cmap[rec+4:]))
		if (platform == 3 && encoding == 1) || platform == 0 {
			if off+2 <= len(cmap) && be.Uint16(cmap[off:]) == 4 {
				sub = off
				break
			}
		}
	}
	if sub < 0 || sub+14 > len(cmap) {
		return nil, errors.New("no Unicode format 4 cmap subtable")
	}
	segX2 := int(be.Uint16(cmap[sub+6:]))
	ends := sub + 14
	starts := ends + segX2 + 2
	deltas := starts + segX2
	rangeOffs := deltas + segX2
	if rangeOffs+segX2 > len(cmap) {
		return nil, errors.New("truncated cmap segments")
	}
	gid := make([]uint16, 0x10000)
	for s := 0; s < segX2; s += 2 {
		end := int(be.Uint16(cmap[ends+s:]))
		start := int(be.Uint16(cmap[starts+s:]))
		delta := int(be.Uint16(cmap[deltas+s:]))
		ro := int(be.Uint16(cmap[rangeOffs+s:]))
		for c := start; c <= end && c < 0xFFFF; c++ {
			g := 0
			if ro == 0 {
				g = (c + delta) & 0xFFFF
			} else {
				p := rangeOffs + s + ro + 2*(c-start)
				if p+2 > len(cmap) {
					continue
				}
				if g = int(be.Uint16(cmap[p:])); g != 0 {
					g = (g + delta) & 0xFFFF
				}
			}
			gid[c] = uint16(g)
		}
	}
	return gid, nil
}
