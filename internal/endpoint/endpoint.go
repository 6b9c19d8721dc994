// Package endpoint checks endpoint overrides before credentials are sent to
// them.
package endpoint

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Check parses an endpoint override and reports whether it is plain HTTP.
// Plain HTTP is accepted only on a loopback address (an emulator on this
// machine), so credentials never travel in clear text over a network.
func Check(raw string) (insecure bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false, fmt.Errorf("%q is not an absolute URL (expected https://host[:port])", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return false, nil
	case "http":
		if !IsLoopback(u.Hostname()) {
			return false, fmt.Errorf("%q uses plain HTTP on a non-loopback host; credentials would travel in clear text. Use https, or http only on 127.0.0.1, ::1 or localhost", raw)
		}
		return true, nil
	default:
		return false, fmt.Errorf("%q has scheme %q; expected https (or http on a loopback address)", raw, u.Scheme)
	}
}

// IsLoopback reports whether host is localhost or a loopback IP.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
