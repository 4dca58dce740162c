// Package gendoc keeps the generated sections of Markdown files (the
// README's cause and configuration tables) in step with the code they are
// written from. A section sits between two HTML comments that name it and
// the command that rewrites it; a test compares it with what the code
// renders, and rewrites it when run with its -update flag.
package gendoc

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// update is the test binary's -update flag (gendoc is imported by tests
// only).
var update = flag.Bool("update", false, "rewrite the generated sections of Markdown files")

// Section checks that the section called name in the Markdown file at path
// is want, or, under -update, writes want there. command is what rewrites
// it, named in the markers and in the failure.
func Section(tb testing.TB, path, name, command, want string) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	doc := string(b)
	begin := "<!-- " + name + ": written by `" + command + "` -->\n"
	end := "<!-- end of " + name + " -->\n"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		tb.Fatalf("%s has no %s between %q and %q", path, name, begin, end)
	}
	got := doc[i+len(begin) : j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	tb.Errorf("%s's %s is out of date; run %s\ngot:\n%s\nwant:\n%s", path, name, command, got, want)
}

// Cell escapes text for a Markdown table cell.
func Cell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;").Replace(s)
}
