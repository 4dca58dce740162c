package pmsbridge

import "strconv"

// Count says how many of a thing, in words people read: "1 job",
// "3 jobs", "0 jobs". one and many are the thing's singular and plural.
// Every page, PDF and command that counts says it this way.
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
