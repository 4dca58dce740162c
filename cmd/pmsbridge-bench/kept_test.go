package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKeptSections: rewriting the report keeps the sections other
// commands wrote, markers included, and nothing else of the old file.
func TestKeptSections(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	old := "# Benchmarks\n\nold figures\n\n<!-- kept: failover -->\n## Failover\n\nkept figures\n<!-- /kept: failover -->\n\ntrailing\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "\n<!-- kept: failover -->\n## Failover\n\nkept figures\n<!-- /kept: failover -->\n"
	if got := keptSections(path); got != want {
		t.Errorf("keptSections = %q, want %q", got, want)
	}
	if got := keptSections(filepath.Join(t.TempDir(), "none.md")); got != "" {
		t.Errorf("no file: %q", got)
	}
}
