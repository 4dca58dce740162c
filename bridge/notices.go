package bridge

import "strconv"

// Success notices are chosen by a key in the page's address from these
// fixed texts; nothing from the address is ever shown as our own words
// (a link could otherwise make the green box say anything). Numbers are
// parsed as numbers. Unknown keys show nothing.

// settingsNotice is the settings page's notice for done (and the number of
// jobs replayed after a key was saved).
func settingsNotice(done, replayed string) string {
	switch done {
	case "saved":
		text := "Your Cliniko API key is saved and works."
		if n, ok := count(replayed); ok && n > 0 {
			if n == 1 {
				text += " 1 job that had failed because of the key is running again."
			} else {
				text += " " + itoa(n) + " jobs that had failed because of the key are running again."
			}
		}
		return text
	case "removed":
		return "Your Cliniko API key is removed."
	}
	return ""
}

// adminNotice is the admin home page's notice for key, with a count and
// the clinic's name (looked up by the caller from an id, never text from
// the address) when the jobs were all one clinic's.
func adminNotice(key, n, clinic string) string {
	c, ok := count(n)
	where := ""
	if clinic != "" {
		where = " of " + clinic
	}
	switch key {
	case "replayed":
		if ok {
			return "Replayed " + plural(c, "job") + where + "."
		}
	case "deleted":
		if ok {
			return "Deleted " + plural(c, "job") + where + "."
		}
		return "Deleted."
	case "nothing":
		return "Nothing selected: no failed job matches."
	case "gone":
		return "That job is no longer in the failure ledger (it succeeded or was deleted)."
	}
	return ""
}

// count reads a small non-negative decimal number.
func count(s string) (int, bool) {
	if len(s) == 0 || len(s) > 7 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}
