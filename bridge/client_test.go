package bridge

import (
	"net/netip"
	"testing"
)

func TestClientAddress(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("127.0.0.1/32")}
	for _, tc := range []struct {
		desc    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"no proxies: the peer", "203.0.113.7:5555", nil, nil, "203.0.113.7"},
		{"no proxies: X-Forwarded-For ignored", "203.0.113.7:5555", []string{"198.51.100.1"}, nil, "203.0.113.7"},
		{"untrusted peer: X-Forwarded-For ignored", "203.0.113.7:5555", []string{"198.51.100.1"}, proxies, "203.0.113.7"},
		{"trusted peer: the address it saw", "10.1.2.3:5555", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"trusted peer: what the client made up is left of it", "10.1.2.3:5555", []string{"192.0.2.66, 198.51.100.1"}, proxies, "198.51.100.1"},
		{"trusted peer: a made-up trusted address left of the real one", "10.1.2.3:5555", []string{"10.9.9.9, 198.51.100.1"}, proxies, "198.51.100.1"},
		{"two trusted proxies in a row", "10.1.2.3:5555", []string{"198.51.100.1, 10.0.0.5"}, proxies, "198.51.100.1"},
		{"several headers count as one list", "10.1.2.3:5555", []string{"192.0.2.66", "198.51.100.1, 10.0.0.5"}, proxies, "198.51.100.1"},
		{"trusted peer without the header: the peer", "10.1.2.3:5555", nil, proxies, "10.1.2.3"},
		{"every hop trusted: the left-most", "10.1.2.3:5555", []string{"10.0.0.7, 10.0.0.5"}, proxies, "10.0.0.7"},
		{"garbage stops at the last trusted hop", "10.1.2.3:5555", []string{"198.51.100.1, not-an-address, 10.0.0.5"}, proxies, "10.0.0.5"},
		{"an empty header value is garbage", "10.1.2.3:5555", []string{""}, proxies, "10.1.2.3"},
		{"hops with ports", "10.1.2.3:5555", []string{"198.51.100.1:4711, [2001:db8::9]:443"}, proxies, "2001:db8::/64"},
		{"IPv6 peer counted per /64", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:5555", nil, nil, "2001:db8:1:2::/64"},
		{"IPv6 behind an IPv6 proxy", "[fd00::1]:5555", []string{"2001:db8:1:2::77"}, proxies, "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:203.0.113.7]:5555", nil, nil, "203.0.113.7"},
		{"loopback proxy", "127.0.0.1:5555", []string{"203.0.113.7"}, proxies, "203.0.113.7"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := clientAddress(tc.remote, tc.xff, tc.trusted); got != tc.want {
				t.Errorf("clientAddress(%q, %q) = %q, want %q", tc.remote, tc.xff, got, tc.want)
			}
		})
	}
}
