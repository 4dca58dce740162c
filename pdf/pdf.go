// Package pdf renders one version of a home-exercise programme as a PDF that a
// patient can print or keep: who prescribed it, how to open it online (the
// access code), and each exercise with its dosage and instructions.
//
// Rendering is deterministic: the same Document gives the same bytes, so a
// retried upload job produces an identical file. Text in any of the scripts
// that the embedded fonts cover (Latin, Greek, Cyrillic, Arabic, Hebrew,
// Chinese, Japanese, Korean) is drawn with real glyphs; see text.go for how
// mixed scripts are laid out.
package pdf

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jung-kurt/gofpdf"
	"github.com/physitrack/pmsbridge"
)

// Document is everything printed on a programme PDF.
type Document struct {
	Clinic       string              // clinic name, at the top
	Practitioner string              // the prescribing practitioner's name
	PatientName  string              // as the patient knows it, e.g. "Zoë O'Brien"
	Programme    pmsbridge.Programme // the version to print; Code is the access code
	AccessURL    string              // where patients enter the code, e.g. "https://au.physitrack.com/access?c=…"
	// Clock is the clinic's time: the start date and the date the
	// programme was given are printed in it, in its one date format ("30 Nov
	// 2026"). The zero value is UTC.
	Clock pmsbridge.ClinicTime
}

// Renderer renders programme PDFs. It holds the embedded fonts and their
// character coverage, worked out once; it is safe for concurrent use.
type Renderer struct {
	faces [numFaces]*face
}

// NewRenderer returns a Renderer with the embedded fonts loaded.
func NewRenderer() (*Renderer, error) {
	faces, err := loadFaces()
	if err != nil {
		return nil, fmt.Errorf("load fonts: %w", err)
	}
	return &Renderer{faces: faces}, nil
}

var defaultRenderer = sync.OnceValues(NewRenderer)

// Render renders doc with a shared Renderer. See Renderer.Render.
func Render(doc Document) ([]byte, error) {
	r, err := defaultRenderer()
	if err != nil {
		return nil, err
	}
	return r.Render(doc)
}

// fallbackDate is the PDF creation date when the programme has none: gofpdf
// would otherwise use the clock, and the bytes would change on every render.
var fallbackDate = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Render returns doc as an A4 PDF. The same doc always gives the same bytes:
// the PDF's dates come from Programme.CreatedAt.
func (r *Renderer) Render(doc Document) ([]byte, error) {
	p := gofpdf.New("P", "mm", "A4", "")
	p.SetCatalogSort(true)
	created := doc.Programme.CreatedAt.UTC()
	if created.IsZero() {
		created = fallbackDate
	}
	p.SetCreationDate(created)
	p.SetModificationDate(created)
	p.SetAutoPageBreak(false, 0)
	p.SetMargins(marginX, marginTop, marginX)
	p.SetTitle(doc.Programme.Title, true)
	p.SetAuthor(doc.Practitioner, true)
	p.SetCreator("pmsbridge", false)

	d := &drawer{r: r, p: p}
	d.m = &measurer{p: p, faces: &r.faces, cache: make(map[widthKey]float64, 256)}

	c := r.compose(doc)
	// Only the fonts this document's text needs are registered, each cut
	// down to the characters drawn (see subset.go).
	for i, need := range c.faces {
		if need {
			p.AddUTF8FontFromBytes(r.faces[i].family, "", r.faces[i].font.subset(&c.runes[i]))
		}
	}
	if err := p.Error(); err != nil {
		return nil, fmt.Errorf("register fonts: %w", err)
	}
	pages := paginate(c.build(d))
	for n, items := range pages {
		p.AddPage()
		for _, it := range items {
			it.item.draw(d, it.y)
		}
		d.footer(c, n+1, len(pages))
	}
	var buf bytes.Buffer
	if err := p.Output(&buf); err != nil {
		return nil, fmt.Errorf("render pdf: %w", err)
	}
	return buf.Bytes(), nil
}

// drawer is the state of one document being drawn.
type drawer struct {
	r *Renderer
	p *gofpdf.Fpdf
	m *measurer
}

// setFont selects a face; gofpdf itself skips a change to the current font.
func (d *drawer) setFont(face int, size float64) {
	d.p.SetFont(d.r.faces[face].family, "", size)
}

func itoa(n int) string { return strconv.Itoa(n) }

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }
