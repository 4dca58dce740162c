package pdf

import (
	"math/bits"
	"strings"
)

// coverage is the set of Basic Multilingual Plane runes a font has a glyph for,
// one bit per rune (8 KiB per font).
//
// Only the BMP is tracked because gofpdf reads only the format 4 (BMP) cmap
// subtable and writes text as UTF-16 code units with Identity-H: a rune above
// U+FFFF could not be drawn by gofpdf even if the font had it.
type coverage [65536 / 64]uint64

// has reports whether the font has a glyph for r.
func (c *coverage) has(r rune) bool {
	if r < 0 || r > 0xFFFF {
		return false
	}
	return c[r>>6]&(1<<(uint(r)&63)) != 0
}

func (c *coverage) set(r int) { c[r>>6] |= 1 << (uint(r) & 63) }

// String returns the runes of c in order.
func (c *coverage) String() string {
	var b strings.Builder
	for i, w := range c {
		for w != 0 {
			bit := bits.TrailingZeros64(w)
			b.WriteRune(rune(i*64 + bit))
			w &^= 1 << uint(bit)
		}
	}
	return b.String()
}
