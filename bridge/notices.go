package bridge

import "strconv"

// Success notices are chosen by a key in the page's address from these
// fixed texts; nothing from the address is ever shown as our own words
// (a link could otherwise make the green box say anything). Numbers are
// parsed as numbers. Unknown keys show nothing.

// settingsNotice is the settings page's notice for done (and the number of
// jobs replayed after a key was saved, and whether the clinic's time zone
// was taken from Cliniko).
func settingsNotice(done, replayed string, zone bool) string {
	switch done {
	case "saved":
		text := "Your Cliniko API key is saved and works."
		if n, ok := count(replayed); ok && n == 1 {
			text += " A programme PDF or an import that had failed is running again with it."
		} else if ok && n > 1 {
			text += " " + itoa(n) + " programme PDFs or imports that had failed are running again with it."
		}
		if zone {
			text += " Your clinic's time zone was taken from Cliniko; times are shown in it."
		}
		return text
	case "removed":
		return "Your Cliniko API key is removed."
	}
	return ""
}

// adminNotice is the admin home page's notice for key (and a count).
func adminNotice(key, n string) string {
	switch key {
	case "replayed":
		if c, ok := count(n); ok {
			return "Replayed " + itoa(c) + " job(s)."
		}
	case "deleted":
		return "Deleted."
	case "nothing":
		return "Nothing selected."
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
