package pmsbridge

import "strings"

// countryNames are the names of the countries whose clinics use Cliniko
// most, for pages ("Demo Physio Clinic (Australia)").
var countryNames = map[string]string{
	"AU": "Australia", "NZ": "New Zealand", "CA": "Canada", "IE": "Ireland", "GB": "United Kingdom",
	"UK": "United Kingdom", "US": "United States", "ZA": "South Africa", "SG": "Singapore", "AE": "United Arab Emirates",
	"DE": "Germany", "FR": "France", "NL": "Netherlands", "ES": "Spain", "IT": "Italy",
}

// CountryName is a country's name for pages, from its ISO 3166-1 alpha-2
// code; the code itself (upper case) when the name is not known.
func CountryName(code string) string {
	code = strings.ToUpper(strings.TrimSpace(code))
	if n, ok := countryNames[code]; ok {
		return n
	}
	return code
}
