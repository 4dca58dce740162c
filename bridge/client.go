package bridge

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientFrom returns the client address of the request, as worked out by
// withClient (every request passes it first). Every per-client limit, the
// session record and the request log use this one value.
func clientFrom(r *http.Request) string {
	if c, ok := r.Context().Value(ctxClient).(string); ok {
		return c
	}
	return ""
}

// withClient works out the request's client address once and puts it in
// the request context.
func (s *Server) withClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := clientAddress(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.cfg.TrustedProxies)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxClient, c)))
	})
}

// clientAddress is who a request comes from, as design.md defines it:
// the connection's peer, unless the peer is a trusted proxy; then the
// right-most X-Forwarded-For address that is not a trusted proxy (each
// proxy appends the address it saw, so everything left of the first
// untrusted hop may be made up by the client). When every hop is trusted,
// the left-most one. A hop that is not an address stops the walk at the
// last trusted hop: only our own proxies write that far right, so it is
// never the client's to choose.
//
// IPv6 clients are counted per /64 (one customer's network gets a /64 and
// can pick any address in it), so the answer is an address for IPv4 and a
// prefix such as "2001:db8:1:2::/64" for IPv6.
func clientAddress(remoteAddr string, forwardedFor []string, trusted []netip.Prefix) string {
	peer, ok := parseHop(remoteAddr)
	if !ok {
		return remoteAddr // not from a TCP listener (tests); used as it is
	}
	client := peer
	if isTrusted(peer, trusted) {
		var hops []string
		for _, v := range forwardedFor {
			hops = append(hops, strings.Split(v, ",")...)
		}
		for i := len(hops) - 1; i >= 0; i-- {
			a, ok := parseHop(hops[i])
			if !ok {
				break
			}
			client = a
			if !isTrusted(a, trusted) {
				break
			}
		}
	}
	if client.Is6() {
		return netip.PrefixFrom(client, 64).Masked().String()
	}
	return client.String()
}

// parseHop reads one address: "192.0.2.1", "192.0.2.1:5678", "2001:db8::1",
// "[2001:db8::1]:443"; IPv4-mapped IPv6 becomes IPv4 and zones are dropped.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
