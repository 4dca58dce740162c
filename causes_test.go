package pmsbridge

import (
	"strings"
	"testing"
	"unicode"

	"github.com/physitrack/pmsbridge/internal/gendoc"
)

// TestCauseCodes: the table holds exactly the contract's cause codes
// (design.md), each once; renaming or dropping one breaks the contract.
func TestCauseCodes(t *testing.T) {
	t.Parallel()
	contract := []Cause{"cliniko_unauthorized", "cliniko_forbidden", "cliniko_not_found", "cliniko_invalid",
		"cliniko_rate_limited", "cliniko_unavailable", "no_cliniko_key", "not_linked", "invalid_payload", "internal",
		"no_contact", "delivery_rejected", "delivery_unavailable"}
	if len(causeTable) != len(causeIndex) {
		t.Errorf("the table has %d rows for %d causes: a cause is listed twice", len(causeTable), len(causeIndex))
	}
	for _, c := range contract {
		if !c.Valid() {
			t.Errorf("contract cause %s is not in the table", c)
		}
	}
	if len(Causes) != len(contract) {
		t.Errorf("Causes = %v, want the %d contract codes", Causes, len(contract))
	}
	if Cause("nope").Valid() || Cause("").Valid() {
		t.Error("unknown causes are valid")
	}
	if got := Cause("from_a_newer_version").Info().Cause; got != CauseInternal {
		t.Errorf("an unknown cause reads as %s, want internal", got)
	}
}

// TestCauseWording checks every row of the table the way a reviewer would:
// everything a page or support needs is there; reasons are sentences that
// say what happened and not what to do; only causes that are retried can be
// "still trying".
func TestCauseWording(t *testing.T) {
	t.Parallel()
	hints := []string{"settings", "try again", "retried", "automatically", "by itself", "replay", "save ", "add "}
	for _, c := range causeTable {
		t.Run(string(c.Cause), func(t *testing.T) {
			if c.Retry < RetryBackoff || c.Retry > RetryGiveUp {
				t.Errorf("retry class %d", c.Retry)
			}
			if r := []rune(c.Reason); len(r) == 0 || !unicode.IsUpper(r[0]) || !strings.HasSuffix(c.Reason, ".") {
				t.Errorf("reason %q is not a sentence starting with a capital letter", c.Reason)
			}
			for _, h := range hints {
				if strings.Contains(strings.ToLower(c.Reason), h) {
					t.Errorf("reason %q gives a hint (%q): hints belong to the clinician and support wording", c.Reason, h)
				}
			}
			cl := c.Clinician
			if cl.Heading == "" || len(cl.Explain) == 0 {
				t.Errorf("clinician page: heading %q, %d paragraphs", cl.Heading, len(cl.Explain))
			}
			if cl.Waiting != nil && (c.Retry == RetryGiveUp || cl.Waiting.Heading == "" || len(cl.Waiting.Explain) == 0) {
				t.Errorf("waiting words %+v on a cause that is %s", cl.Waiting, c.Retry)
			}
			if cl.Note != "" && !strings.HasSuffix(cl.Note, ".") {
				t.Errorf("note %q is not a sentence", cl.Note)
			}
			if s := c.Support; s.Title == "" || s.Means == "" || s.Fix == "" {
				t.Errorf("support wording %+v is incomplete", s)
			}
		})
	}
	if CauseInternal.Info().Clinician.KeyCheck == "" {
		t.Error("internal has no key-check sentence, which every cause without its own falls back to")
	}
}

// readmeCauseTable renders the support wording as the README's runbook
// table.
func readmeCauseTable() string {
	var b strings.Builder
	b.WriteString("| cause | what happened | what fixes it | retried |\n| --- | --- | --- | --- |\n")
	for _, c := range causeTable {
		s := c.Support
		b.WriteString("| `" + string(c.Cause) + "` | **" + gendoc.Cell(s.Title) + ".** " + gendoc.Cell(s.Means) + " | " + gendoc.Cell(s.Fix) + " | " + c.Retry.String() + " |\n")
	}
	return b.String()
}

// TestREADMECauseTable: the README's runbook table is the cause table's
// support wording, so the two cannot drift. Run with -update to rewrite it.
func TestREADMECauseTable(t *testing.T) {
	gendoc.Section(t, "README.md", "cause table", "go test . -run TestREADMECauseTable -update", readmeCauseTable())
}
