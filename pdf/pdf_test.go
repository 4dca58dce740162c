package pdf

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/physitrack/pmsbridge"
)

var update = flag.Bool("update", false, "rewrite the golden PDFs in testdata/pdf")

const goldenDir = "../testdata/pdf"

// latinDoc is a typical English-language programme.
func latinDoc() Document {
	var exercises []pmsbridge.Exercise
	for _, id := range []string{"ex_straight_leg_raise", "ex_quad_set", "ex_heel_slide", "ex_bridge", "ex_calf_raise", "ex_single_leg_stance"} {
		e, ok := pmsbridge.CatalogueExercise(id)
		if !ok {
			panic("no catalogue exercise " + id)
		}
		exercises = append(exercises, e)
	}
	return Document{
		Clinic:       "Harbourside Physiotherapy",
		Practitioner: "Dr. Siobhán Ní Bhriain",
		PatientName:  "Zoë O'Brien",
		AccessURL:    "https://au.physitrack.com/access",
		Programme: pmsbridge.Programme{
			ID: "prg_123", Version: 2, Title: "Knee rehab, week 1", StartsOn: "2026-11-22",
			Notes:     "Stop if pain rises above 5/10.\nIce the knee for 15 minutes after the exercises if it feels warm or swollen.",
			Exercises: exercises,
			Code:      "qwertzui",
			CreatedAt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		},
	}
}

// mixedDoc has names and text in every script the fonts must cover.
func mixedDoc() Document {
	return Document{
		Clinic:       "Κλινική Φυσικοθεραπείας Αθηνών",
		Practitioner: "Иван Петров",
		PatientName:  "王小明 (김민준)",
		AccessURL:    "https://au.physitrack.com/access",
		Programme: pmsbridge.Programme{
			ID: "prg_456", Version: 1, Title: "膝のリハビリ — 第1週", StartsOn: "2026-01-05",
			Notes: "Γιώργος Παπαδόπουλος: σταματήστε αν ο πόνος αυξηθεί. Если боль усилится, прекратите. 통증이 심해지면 중단하세요. 如果疼痛加剧，请停止。 توقف إذا زاد الألم. Zoë O'Brien, Ærøskøbing, Łódź, Šibenik.",
			Exercises: []pmsbridge.Exercise{
				{Name: "Straight leg raise — 直腿抬高", Instructions: "仰卧，一侧膝盖弯曲，另一条腿伸直。收紧伸直腿的大腿肌肉，将腿抬高到弯曲膝盖的高度。保持，然后慢慢放下。", Sets: 3, Reps: 10, HoldSeconds: 5, TimesPerDay: 2, DaysPerWeek: 5},
				{Name: "스쿼트 (Mini squat)", Instructions: "발을 엉덩이 너비로 벌리고 서세요. 앉듯이 무릎을 살짝 구부리고 발뒤꿈치는 바닥에 붙이세요. 천천히 다시 일어서세요.", Sets: 1, Reps: 1, TimesPerDay: 1, DaysPerWeek: 7},
				{Name: "かかと上げ", Instructions: "カウンターにつかまって立ち、つま先立ちになります。かかとをゆっくり床に下ろします。", Sets: 2, Reps: 15, TimesPerDay: 3, DaysPerWeek: 1},
				{Name: "Подъём на носки", Instructions: "Встаньте, держась за стол. Поднимитесь на носки как можно выше, затем медленно опустите пятки.", Sets: 3, Reps: 12, TimesPerDay: 1, DaysPerWeek: 4},
				{Name: "Διάταση γάμπας", Instructions: "Σταθείτε απέναντι σε έναν τοίχο. Κρατήστε την πίσω φτέρνα κάτω και γείρετε προς τον τοίχο.", Sets: 1, Reps: 3, HoldSeconds: 30, TimesPerDay: 2, DaysPerWeek: 7},
				{Name: "تمرين الكاحل", Instructions: "اجلس وارفع قدمك عن الأرض. حرك الكاحل ببطء.", Sets: 1, Reps: 20, TimesPerDay: 3, DaysPerWeek: 7},
			},
			Code:      "abcdefgh",
			CreatedAt: time.Date(2026, 1, 5, 9, 30, 0, 0, time.UTC),
		},
	}
}

func mustClinicTime(zone string) pmsbridge.ClinicTime {
	c, err := pmsbridge.LoadClinicTime(zone)
	if err != nil {
		panic(err)
	}
	return c
}

// programmeOf returns a document with n catalogue exercises, cycling
// through the catalogue.
func programmeOf(doc Document, n int) Document {
	cat := pmsbridge.Catalogue()
	doc.Programme.Exercises = nil
	for i := 0; i < n; i++ {
		doc.Programme.Exercises = append(doc.Programme.Exercises, cat[i%len(cat)])
	}
	return doc
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		desc string
		file string
		doc  Document
	}{
		{"latin", "latin.pdf", latinDoc()},
		{"mixed scripts", "mixed-scripts.pdf", mixedDoc()},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := Render(tc.doc)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			again, err := Render(tc.doc)
			if err != nil {
				t.Fatalf("Render again: %v", err)
			}
			if !bytes.Equal(got, again) {
				t.Fatal("two renders of the same document differ")
			}
			path := filepath.Join(goldenDir, tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (regenerate with go test ./pdf -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the rendered PDF (%d bytes, want %d); if the change is intended, regenerate with go test ./pdf -update", path, len(got), len(want))
			}
		})
	}
}

// pdfText extracts the text of a PDF with poppler's pdftotext. A missing
// pdftotext fails the test: these checks are the proof that text in every
// script comes out of the PDF as text.
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatalf("pdftotext not found (install poppler-utils): %v", err)
	}
	cmd := exec.Command(bin, "-enc", "UTF-8", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, stderr.String())
	}
	return string(out)
}

func TestRenderText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc     string
		doc      Document
		want     []string
		replaced bool // the text has characters no font draws
	}{
		{
			desc: "latin",
			doc:  latinDoc(),
			want: []string{"Zoë O'Brien", "qwertzui", "Harbourside Physiotherapy", "Dr. Siobhán Ní Bhriain",
				"Knee rehab, week 1", "Version 2", "starts 22 Nov 2026", "given 22 Nov 2026", "https://au.physitrack.com/access",
				"3 sets of 10 repetitions, hold each for 5 seconds, twice a day, 5 days a week",
				"Straight leg raise", "Stop if pain rises above 5/10.", "Page 1 of 2"},
		},
		{
			desc: "mixed scripts",
			doc:  mixedDoc(),
			want: []string{"王小明 (김민준)", "abcdefgh", "Κλινική Φυσικοθεραπείας Αθηνών", "Иван Петров",
				"膝のリハビリ", "5 Jan 2026", "Γιώργος Παπαδόπουλος", "통증이 심해지면 중단하세요.",
				"1 set of 1 repetition, once a day, every day", "Ærøskøbing, Łódź, Šibenik", "Page 1 of",
				"توقف إذا زاد الألم", "かかと上げ", "如果疼痛加剧，请停止。"},
		},
		{
			desc: "empty document",
			doc:  Document{},
			want: []string{"Home exercise programme for", "Page 1 of 1"},
		},
		{
			desc: "greek patient",
			doc: func() Document {
				d := latinDoc()
				d.PatientName = "Γιώργος Παπαδόπουλος"
				return d
			}(),
			want: []string{"Γιώργος Παπαδόπουλος", "qwertzui"},
		},
		{
			desc: "korean patient",
			doc: func() Document {
				d := latinDoc()
				d.PatientName = "김민준"
				return d
			}(),
			want: []string{"김민준", "qwertzui"},
		},
		{
			// Given at 22 Nov 2026, 12:00 UTC: already the 23rd in Auckland,
			// still the 22nd in Toronto. The start date is a calendar date.
			desc: "in a clinic in Auckland",
			doc: func() Document {
				d := latinDoc()
				d.Programme.CreatedAt = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
				d.Clock = mustClinicTime("Pacific/Auckland")
				return d
			}(),
			want: []string{"starts 22 Nov 2026", "given 23 Nov 2026"},
		},
		{
			desc: "in a clinic in Toronto",
			doc: func() Document {
				d := latinDoc()
				d.Programme.CreatedAt = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
				d.Clock = mustClinicTime("America/Toronto")
				return d
			}(),
			want: []string{"starts 22 Nov 2026", "given 22 Nov 2026"},
		},
		{
			desc: "characters no font has",
			doc: func() Document {
				d := latinDoc()
				d.PatientName = "Zoë 😀 O'Brien"
				return d
			}(),
			want:     []string{"Zoë \uFFFD O'Brien", "qwertzui"},
			replaced: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b, err := Render(tc.doc)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			text := pdfText(t, b)
			// pdftotext ends lines where the layout does; compare with
			// line breaks as spaces.
			flat := strings.Join(strings.Fields(text), " ")
			for _, w := range tc.want {
				if !strings.Contains(flat, w) {
					t.Errorf("extracted text lacks %q; got:\n%s", w, text)
				}
			}
			if strings.ContainsRune(text, replacementRune) && !tc.replaced {
				t.Errorf("extracted text has U+FFFD: a character no font could draw")
			}
		})
	}
}

func TestDosage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		e    pmsbridge.Exercise
		want string
	}{
		{"full", pmsbridge.Exercise{Sets: 3, Reps: 10, HoldSeconds: 5, TimesPerDay: 2, DaysPerWeek: 5},
			"3 sets of 10 repetitions, hold each for 5 seconds, twice a day, 5 days a week"},
		{"ones", pmsbridge.Exercise{Sets: 1, Reps: 1, HoldSeconds: 1, TimesPerDay: 1, DaysPerWeek: 1},
			"1 set of 1 repetition, hold for 1 second, once a day, 1 day a week"},
		{"no hold, every day", pmsbridge.Exercise{Sets: 2, Reps: 15, TimesPerDay: 3, DaysPerWeek: 7},
			"2 sets of 15 repetitions, 3 times a day, every day"},
		{"hold only", pmsbridge.Exercise{HoldSeconds: 30, TimesPerDay: 2},
			"Hold for 30 seconds, twice a day"},
		{"reps only", pmsbridge.Exercise{Reps: 20}, "20 repetitions"},
		{"sets only", pmsbridge.Exercise{Sets: 4}, "4 sets"},
		{"nothing", pmsbridge.Exercise{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Dosage(tc.e)); diff != "" {
				t.Errorf("Dosage(%+v) mismatch (-want +got):\n%s", tc.e, diff)
			}
		})
	}
}

// BenchmarkRender measures whole-document rendering. Run it with
//
//	go test ./pdf -run '^$' -bench Render -benchmem
func BenchmarkRender(b *testing.B) {
	cases := []struct {
		desc string
		doc  Document
	}{
		{"latin/12", programmeOf(latinDoc(), 12)},
		{"latin/40", programmeOf(latinDoc(), 40)},
		{"cjk/12", withCJK(programmeOf(latinDoc(), 12))},
		{"cjk/40", withCJK(programmeOf(latinDoc(), 40))},
		{"mixed/6", mixedDoc()},
	}
	if _, err := Render(cases[0].doc); err != nil { // load fonts outside the timing
		b.Fatal(err)
	}
	for _, bc := range cases {
		b.Run(bc.desc, func(b *testing.B) {
			var size int
			for b.Loop() {
				out, err := Render(bc.doc)
				if err != nil {
					b.Fatal(err)
				}
				size = len(out)
			}
			b.ReportMetric(float64(size), "pdf-bytes")
		})
	}
}

// withCJK gives the patient a Chinese name and a Korean note, so the document
// needs both large CJK fonts.
func withCJK(d Document) Document {
	d.PatientName = "王小明"
	d.Programme.Notes = "통증이 심해지면 중단하세요. " + d.Programme.Notes
	return d
}

// TestRenderConcurrent renders from many goroutines with one Renderer; run
// with -race, it proves the shared fonts are only read.
func TestRenderConcurrent(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	docs := []Document{latinDoc(), mixedDoc()}
	want := make([][]byte, len(docs))
	for i, d := range docs {
		if want[i], err = r.Render(d); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			i := g % len(docs)
			got, err := r.Render(docs[i])
			if err == nil && !bytes.Equal(got, want[i]) {
				err = fmt.Errorf("document %d: concurrent render differs", i)
			}
			errs <- err
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkNewRenderer measures the one-off cost of loading the embedded
// fonts (paid once per process by Render).
func BenchmarkNewRenderer(b *testing.B) {
	for b.Loop() {
		if _, err := NewRenderer(); err != nil {
			b.Fatal(err)
		}
	}
}
