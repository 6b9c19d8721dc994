package jit

import (
	"strings"
	"time"
)

// GrantRequestOf tells which request an NSG rule named name grants port
// of machine for: grant rule names carry the request ID (GrantRuleName),
// and the name is recomputed from it, so a rule named by hand, or for
// another machine or port, is not taken for one.
func GrantRequestOf(name, machine string, port PortProtocol) (string, bool) {
	prefix := "jit-grant-" + nameSlug(machineShortName(machine), 20) + "-" + portSlug(port) + "-"
	const hashLen = 10
	if !strings.HasPrefix(name, prefix) || len(name) < len(prefix)+1+hashLen+1 {
		return "", false
	}
	request := name[len(prefix) : len(name)-hashLen-1]
	if GrantRuleName(request, machine, port) != name {
		return "", false
	}
	return request, true
}

// requestIDTimeLayout is how a request ID starts (engine.NewRequestID).
const requestIDTimeLayout = "20060102T150405Z"

// RequestStart reads the start time at the head of a request ID.
func RequestStart(request string) (time.Time, bool) {
	if len(request) < len(requestIDTimeLayout) {
		return time.Time{}, false
	}
	t, err := time.Parse(requestIDTimeLayout, request[:len(requestIDTimeLayout)])
	return t, err == nil
}
