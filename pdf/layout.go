package pdf

import (
	"strings"
)

// Page geometry, in mm (A4 is 210 × 297).
const (
	pageW        = 210.0
	pageH        = 297.0
	marginX      = 20.0
	marginTop    = 18.0
	bodyBottom   = 297.0 - 22.0 // text never goes below this
	footerY      = 297.0 - 14.0
	contentW     = pageW - 2*marginX
	accessIndent = 7.0
)

// Colours: dark text on white, one calm accent for structure.
var (
	colText   = rgb{0x1c, 0x24, 0x2b}
	colMuted  = rgb{0x5b, 0x66, 0x70}
	colAccent = rgb{0x0b, 0x6e, 0x79}
	colRule   = rgb{0xc9, 0xd3, 0xd8}
	colBoxBg  = rgb{0xe9, 0xf4, 0xf5}
)

// The type scale: a patient holding the paper at arm's length reads 11 pt
// body text comfortably; headings step up clearly.
var (
	stClinic   = style{size: 15, bold: true, color: colAccent}
	stSmall    = style{size: 10, color: colMuted}
	stLabel    = style{size: 10, color: colMuted}
	stPatient  = style{size: 20, bold: true, color: colText, lead: 1.25}
	stTitle    = style{size: 14, bold: true, color: colText}
	stHeading  = style{size: 14, bold: true, color: colAccent}
	stExercise = style{size: 13, bold: true, color: colText}
	stDosage   = style{size: 11, bold: true, color: colAccent, lead: 1.4}
	stBody     = style{size: 11, color: colText, lead: 1.45}
	stCode     = style{size: 28, bold: true, color: colText, lead: 1.2}
	stFooter   = style{size: 9, color: colMuted}
)

// content is a document's text, cleaned, before layout.
type content struct {
	clinic, practitioner, patient string
	title, meta                   string
	code, access                  string
	notes                         string
	exercises                     []exerciseText
	footerLeft                    string
	runes                         [numFaces]coverage // what each font must draw
	faces                         [numFaces]bool     // fonts the text needs
}

// Fixed wording, kept here so that compose sees every rune that is drawn.
const (
	txtFor        = "Home exercise programme for"
	txtPrescribed = "Prescribed by "
	txtCode       = "Your access code"
	txtNotes      = "Notes from your practitioner"
	txtExercises  = "Your exercises"
	txtNoURL      = "Open the exercise app, enter this code and your year of birth."
	// Digits and the footer's words, drawn whatever the content.
	txtAlways = " 0123456789.,·Page of Exercise Version starts given"
)

type exerciseText struct {
	name, dosage, instructions string
}

func (r *Renderer) compose(doc Document) *content {
	c := &content{}
	cl := func(s string) string {
		s = strings.TrimSpace(r.clean(s))
		for _, ru := range s {
			if ru == '\n' {
				continue
			}
			if f := r.faceFor(ru); f >= 0 {
				c.faces[f] = true
				c.runes[f].set(int(ru))
			}
		}
		return s
	}
	for _, s := range []string{txtFor, txtPrescribed, txtCode, txtNotes, txtExercises, txtAlways} {
		cl(s)
	}
	pr := doc.Programme
	c.clinic = cl(doc.Clinic)
	if doc.Practitioner != "" {
		c.practitioner = txtPrescribed + cl(doc.Practitioner)
	}
	c.patient = cl(doc.PatientName)
	c.title = cl(pr.Title)
	meta := []string{"Version " + itoa(max(pr.Version, 1))}
	if pr.StartsOn != "" {
		meta = append(meta, "starts "+cl(doc.Clock.Day(pr.StartsOn)))
	}
	if !pr.CreatedAt.IsZero() {
		meta = append(meta, "given "+cl(doc.Clock.Date(pr.CreatedAt)))
	}
	c.meta = cl(strings.Join(meta, " · "))
	c.code = cl(pr.Code)
	url := cl(doc.AccessURL)
	if url == "" {
		c.access = cl(txtNoURL)
	} else {
		c.access = cl("Go to " + url + ", enter this code and your year of birth.")
	}
	c.notes = cl(pr.Notes)
	for i, e := range pr.Exercises {
		name := cl(e.Name)
		if name == "" {
			name = "Exercise"
		}
		c.exercises = append(c.exercises, exerciseText{
			name:         itoa(i+1) + ".  " + name,
			dosage:       cl(Dosage(e)),
			instructions: cl(e.Instructions),
		})
	}
	foot := []string{}
	for _, s := range []string{c.patient, c.title} {
		if s != "" {
			foot = append(foot, s)
		}
	}
	c.footerLeft = strings.Join(foot, " · ")
	return c
}

// item is something drawn at a vertical position: a line of text, a rule, a
// box. A spacer is blank space that is dropped at the top of a page.
type item struct {
	h      float64
	spacer bool
	draw   func(d *drawer, y float64)
}

// group is a run of items kept on one page when they fit there. keep is how
// many leading items must not be separated even when the group is taller than
// a page (a heading with the first lines of its text).
type group struct {
	items []item
	keep  int
}

func (g group) height() float64 {
	h := 0.0
	for _, it := range g.items {
		h += it.h
	}
	return h
}

func spacer(h float64) item { return item{h: h, spacer: true, draw: func(*drawer, float64) {}} }

// textItems lays text out at x, width w, one item per line.
func (d *drawer) textItems(st style, text string, x, w float64) []item {
	if text == "" {
		return nil
	}
	var out []item
	for _, ln := range d.r.wrap(d.m, st, text, w) {
		ln := ln
		out = append(out, item{h: st.lineHeight(), draw: func(d *drawer, y float64) { d.drawLine(st, ln, x, y) }})
	}
	return out
}

func rule(color rgb, width float64) item {
	return item{h: 0.1, draw: func(d *drawer, y float64) {
		d.p.SetDrawColor(color.r, color.g, color.b)
		d.p.SetLineWidth(width)
		d.p.Line(marginX, y, pageW-marginX, y)
	}}
}

// build lays the content out as groups, in reading order.
func (c *content) build(d *drawer) []group {
	var gs []group
	x, w := marginX, contentW

	// Who it is from, and who it is for.
	var head []item
	head = append(head, d.textItems(stClinic, c.clinic, x, w)...)
	head = append(head, d.textItems(stSmall, c.practitioner, x, w)...)
	head = append(head, spacer(3), rule(colRule, 0.4), spacer(7))
	head = append(head, d.textItems(stLabel, txtFor, x, w)...)
	head = append(head, d.textItems(stPatient, c.patient, x, w)...)
	head = append(head, spacer(3))
	head = append(head, d.textItems(stTitle, c.title, x, w)...)
	head = append(head, d.textItems(stSmall, c.meta, x, w)...)
	head = append(head, spacer(7))
	gs = append(gs, group{items: head, keep: len(head)})

	// How to open it online: a box the eye finds at once.
	if c.code != "" {
		gs = append(gs, group{items: []item{c.accessBox(d), spacer(8)}, keep: 1})
	}

	if c.notes != "" {
		notes := []item{}
		notes = append(notes, d.textItems(stHeading, txtNotes, x, w)...)
		notes = append(notes, spacer(1.5))
		notes = append(notes, d.textItems(stBody, c.notes, x, w)...)
		notes = append(notes, spacer(8))
		gs = append(gs, group{items: notes, keep: min(len(notes), 4)})
	}

	for i, e := range c.exercises {
		var ex []item
		if i == 0 {
			ex = append(ex, d.textItems(stHeading, txtExercises, x, w)...)
			ex = append(ex, spacer(3))
		} else {
			ex = append(ex, rule(colRule, 0.25), spacer(4))
		}
		ex = append(ex, d.textItems(stExercise, e.name, x, w)...)
		keep := len(ex)
		ex = append(ex, spacer(0.8))
		ex = append(ex, d.textItems(stDosage, e.dosage, x+6, w-6)...)
		ex = append(ex, spacer(1.2))
		body := d.textItems(stBody, e.instructions, x+6, w-6)
		ex = append(ex, body...)
		ex = append(ex, spacer(5))
		// A heading never ends a page: keep it with the dosage and at
		// least two lines of instructions.
		keep += 2 + len(d.textItems(stDosage, e.dosage, x+6, w-6)) + min(len(body), 2)
		gs = append(gs, group{items: ex, keep: min(keep, len(ex))})
	}
	return gs
}

// accessBox is the framed access code with how to use it.
func (c *content) accessBox(d *drawer) item {
	inner := contentW - 2*accessIndent
	label := d.textItems(stExercise, txtCode, 0, inner)
	howto := d.textItems(stBody, c.access, 0, inner)
	// The code is printed as is, letter by letter in wide fixed cells, so
	// that each letter stands apart.
	cell := stCode.size * ptToMM * 0.78
	codeH := stCode.lineHeight() + 2
	h := 6.0 + float64(len(label))*stExercise.lineHeight() + 2 + codeH + 2 +
		float64(len(howto))*stBody.lineHeight() + 6
	return item{h: h, draw: func(d *drawer, y float64) {
		p := d.p
		p.SetFillColor(colBoxBg.r, colBoxBg.g, colBoxBg.b)
		p.SetDrawColor(colAccent.r, colAccent.g, colAccent.b)
		p.SetLineWidth(0.6)
		p.RoundedRect(marginX, y, contentW, h, 3, "1234", "FD")
		x := marginX + accessIndent
		yy := y + 6
		for _, it := range label {
			it.draw2(d, x, yy)
			yy += it.h
		}
		yy += 2
		d.drawCode(c.code, x, yy, cell)
		yy += codeH + 2
		for _, it := range howto {
			it.draw2(d, x, yy)
			yy += it.h
		}
	}}
}

// draw2 draws a text item laid out at x = 0 at another x. Items from
// textItems close over their x, so boxes lay out at 0 and shift here.
func (it item) draw2(d *drawer, x, y float64) {
	d.p.TransformBegin()
	d.p.TransformTranslateX(x)
	it.draw(d, y)
	d.p.TransformEnd()
}

// drawCode draws the access code with every letter centred in its own cell,
// one text object per code so that copying or extracting it gives the code
// unbroken.
func (d *drawer) drawCode(code string, x, y, cell float64) {
	st := stCode
	m := d.m
	// Character spacing (Tc) widens every letter to the cell width on
	// average while keeping the code one string.
	w := m.width(faceDejaVu, st.size, code)
	n := float64(len([]rune(code)))
	spacing := 0.0
	if n > 0 {
		spacing = max(0, (cell*n-w)/n)
	}
	d.p.RawWriteStr(fmtFloat(spacing*72/25.4) + " Tc")
	ln := d.r.wrap(m, st, code, 1e6)[0]
	d.drawLine(st, ln, x, y)
	d.p.RawWriteStr("0 Tc")
}

// footer prints who the pages belong to and "Page N of M".
func (d *drawer) footer(c *content, n, total int) {
	page := "Page " + itoa(n) + " of " + itoa(total)
	pw := d.m.width(faceDejaVu, stFooter.size, page)
	d.drawLine(stFooter, line{words: []word{{runs: []run{{face: faceDejaVu, text: page, w: pw}}, w: pw}}}, pageW-marginX-pw, footerY)
	if c.footerLeft != "" {
		lines := d.r.wrap(d.m, stFooter, c.footerLeft, contentW-pw-10)
		d.drawLine(stFooter, lines[0], marginX, footerY)
	}
}

// placed is an item at its position on a page.
type placed struct {
	item item
	y    float64
}

// paginate places groups on pages. A group that fits on the rest of the page
// goes there; one that does not starts a new page; one taller than a whole
// page flows across pages, but never splits its first keep items.
func paginate(gs []group) [][]placed {
	pages := [][]placed{nil}
	y := marginTop
	newPage := func() {
		pages = append(pages, nil)
		y = marginTop
	}
	put := func(it item) {
		if it.spacer && y == marginTop {
			return
		}
		if y+it.h > bodyBottom && y > marginTop {
			newPage()
			if it.spacer {
				return
			}
		}
		pages[len(pages)-1] = append(pages[len(pages)-1], placed{it, y})
		y += it.h
	}
	for _, g := range gs {
		h := g.height()
		// Trailing space may hang below the last line of a page.
		for i := len(g.items) - 1; i >= 0 && g.items[i].spacer; i-- {
			h -= g.items[i].h
		}
		if y+h > bodyBottom && y > marginTop {
			head := 0.0
			for _, it := range g.items[:g.keep] {
				head += it.h
			}
			if h <= bodyBottom-marginTop || y+head > bodyBottom {
				newPage()
			}
		}
		for i, it := range g.items {
			// Rules and spacers that open a group vanish at the top of a page.
			if y == marginTop && i < 2 && (it.spacer || it.h < 0.5) {
				continue
			}
			put(it)
		}
	}
	return pages
}
