package config_test

import (
	"testing"
	"time"

	"github.com/physitrack/pmsbridge/config"
)

// TestRegionTimeZones: every region has a default clinic time zone, and it
// is an IANA name the time-zone database knows.
func TestRegionTimeZones(t *testing.T) {
	for _, r := range config.RegionCodes {
		name := config.RegionTimeZones[r]
		if name == "" {
			t.Errorf("region %s has no time zone", r)
			continue
		}
		if loc, err := time.LoadLocation(name); err != nil || loc.String() != name {
			t.Errorf("region %s: time zone %q does not load: %v", r, name, err)
		}
		if got := (config.Config{Region: r}).TimeZone(); got != name {
			t.Errorf("config.Config{Region: %q}.TimeZone() = %q, want %q", r, got, name)
		}
	}
	if len(config.RegionTimeZones) != len(config.RegionCodes) {
		t.Errorf("%d time zones for %d regions", len(config.RegionTimeZones), len(config.RegionCodes))
	}
}
