package jit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Port is one port a JIT policy locks, in Defender's shape.
type Port struct {
	Number                   int
	Protocol                 Protocol
	AllowedSourcePrefixes    []string
	MaxRequestAccessDuration Duration
}

// PortProtocol is the port's number and protocol.
func (p Port) PortProtocol() PortProtocol { return PortProtocol{p.Number, p.Protocol} }

// Bounds of a port's maximum request duration, as Defender enforces them.
const (
	MinMaxRequestAccessDuration = Duration(5 * time.Minute)
	MaxMaxRequestAccessDuration = Duration(24 * time.Hour)
)

// DefaultPorts are Defender's defaults for a policy without port blocks:
// SSH, RDP and WinRM (HTTP and HTTPS), TCP, from any source, for up to
// three hours.
func DefaultPorts() []Port {
	ports := make([]Port, 0, 4)
	for _, n := range []int{22, 3389, 5985, 5986} {
		ports = append(ports, Port{
			Number:                   n,
			Protocol:                 ProtocolTCP,
			AllowedSourcePrefixes:    []string{"*"},
			MaxRequestAccessDuration: Duration(3 * time.Hour),
		})
	}
	return ports
}

// FieldError is a validation failure addressed to one attribute, so the
// provider can attach it where the user wrote the value.
type FieldError struct {
	// Path walks from the resource to the attribute: block and attribute
	// names (the schema's) as strings, list indexes as ints, e.g.
	// {"port", 1, "number"}. A provider modelling a list as a set stops at
	// the last string.
	Path    []any
	Summary string
	Detail  string
}

// PathString renders the path as "port[1].number".
func (e FieldError) PathString() string {
	var b strings.Builder
	for _, step := range e.Path {
		switch s := step.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, s)
		}
	}
	return b.String()
}

func (e FieldError) Error() string { return e.PathString() + ": " + e.Summary + ": " + e.Detail }

// Schema names the paths use.
const (
	pathPort                     = "port"
	pathNumber                   = "number"
	pathProtocol                 = "protocol"
	pathAllowedSourcePrefixes    = "allowed_source_address_prefixes"
	pathAllowedSourcePrefix      = "allowed_source_address_prefix"
	pathMaxRequestAccessDuration = "max_request_access_duration"
	pathDuration                 = "duration"
)

// ValidatePorts checks a policy's ports as Defender does: numbers 0–65535,
// protocol TCP, UDP or "*", each number at most once per protocol ("*"
// counts as both), source prefixes that are CIDRs, addresses or "*", and a
// maximum duration between PT5M and P1D.
func ValidatePorts(ports []Port) []FieldError {
	pps := make([]PortProtocol, len(ports))
	for i, p := range ports {
		pps[i] = p.PortProtocol()
	}
	errs := DuplicatePorts(pps)
	fail := func(summary, detail string, path ...any) {
		errs = append(errs, FieldError{Path: append([]any{pathPort}, path...), Summary: summary, Detail: detail})
	}
	for i, p := range ports {
		if p.Number < 0 || p.Number > 65535 {
			fail("Invalid port number", fmt.Sprintf("port number %d is outside 0–65535.", p.Number), i, pathNumber)
		}
		if !validProtocol(p.Protocol) {
			fail("Invalid protocol", fmt.Sprintf("protocol %q is not one of TCP, UDP or * (both).", p.Protocol), i, pathProtocol)
		}
		if len(p.AllowedSourcePrefixes) == 0 {
			fail("No allowed source", `at least one allowed source address prefix is needed; use ["*"] for any source.`, i, pathAllowedSourcePrefixes)
		}
		for j, s := range p.AllowedSourcePrefixes {
			if _, err := ParsePrefix(s); err != nil {
				fail("Invalid source address prefix", err.Error()+".", i, pathAllowedSourcePrefixes, j)
			}
		}
		if d := p.MaxRequestAccessDuration; d < MinMaxRequestAccessDuration || d > MaxMaxRequestAccessDuration {
			fail("Invalid maximum request duration", fmt.Sprintf("the maximum request access duration must lie between %s and %s; it is %s.",
				MinMaxRequestAccessDuration, MaxMaxRequestAccessDuration, d), i, pathMaxRequestAccessDuration)
		}
	}
	return errs
}

// DuplicatePorts reports each port whose number is locked again for an
// overlapping protocol ("*" counts as both TCP and UDP).
func DuplicatePorts(ports []PortProtocol) []FieldError {
	var errs []FieldError
	for i, p := range ports {
		if !validProtocol(p.Protocol) {
			continue
		}
		for j, q := range ports[:i] {
			if q.Number == p.Number && validProtocol(q.Protocol) && protocolsOverlap(p.Protocol, q.Protocol) {
				errs = append(errs, FieldError{Path: []any{pathPort, i}, Summary: "Duplicate port",
					Detail: fmt.Sprintf("port %s overlaps port[%d] (%s): each port number may be locked once per protocol, and * stands for both TCP and UDP.", portLabel(p), j, portLabel(q))})
				break
			}
		}
	}
	return errs
}

func validProtocol(p Protocol) bool {
	return p == ProtocolTCP || p == ProtocolUDP || p == ProtocolAny
}

func protocolsOverlap(p, q Protocol) bool { return p.Covers(q) || q.Covers(p) }

// portLabel writes a port as people read it: "22/TCP".
func portLabel(p PortProtocol) string { return strconv.Itoa(p.Number) + "/" + string(p.Protocol) }

// RequestedPort is one port of an access request.
type RequestedPort struct {
	Number int
	// Protocol may be empty: the policy's only port with this number is meant.
	Protocol     Protocol
	SourcePrefix string
	Duration     Duration
}

// ValidateRequest checks an access request against the policy's ports
// before anything is opened: each port is in the policy with a matching
// protocol (a policy port "*" admits a request for TCP or UDP alone), is
// requested once, its source lies inside one of the port's allowed prefixes,
// and its duration is positive and within the port's maximum. It returns
// the port and protocol each requested port resolves to; they are
// meaningful only when there are no errors.
func ValidateRequest(policy []Port, ports []RequestedPort) ([]PortProtocol, []FieldError) {
	var errs []FieldError
	fail := func(summary, detail string, path ...any) {
		errs = append(errs, FieldError{Path: append([]any{pathPort}, path...), Summary: summary, Detail: detail})
	}
	resolved := make([]PortProtocol, len(ports))
	for i, r := range ports {
		var candidates []Port
		for _, p := range policy {
			if p.Number == r.Number && (r.Protocol == "" || p.Protocol.Covers(r.Protocol)) {
				candidates = append(candidates, p)
			}
		}
		switch {
		case r.Protocol != "" && !validProtocol(r.Protocol):
			fail("Invalid protocol", fmt.Sprintf("protocol %q is not one of TCP, UDP or * (both).", r.Protocol), i, pathProtocol)
			continue
		case len(candidates) == 0:
			fail("Port not in the policy", fmt.Sprintf("port %d%s is not locked by the virtual machine's JIT policy, which locks %s.",
				r.Number, protocolSuffix(r.Protocol), policyPortList(policy)), i, pathNumber)
			continue
		case len(candidates) > 1:
			fail("Ambiguous protocol", fmt.Sprintf("the policy locks port %d for both %s and %s; set the protocol.",
				r.Number, candidates[0].Protocol, candidates[1].Protocol), i, pathProtocol)
			continue
		}
		p := candidates[0]
		resolved[i] = PortProtocol{r.Number, r.Protocol}
		if r.Protocol == "" {
			resolved[i].Protocol = p.Protocol
		}
		for j := range i {
			if resolved[j].Number == r.Number && protocolsOverlap(resolved[j].Protocol, resolved[i].Protocol) {
				fail("Duplicate port", fmt.Sprintf("port %s is requested twice (see port[%d]).", portLabel(resolved[i]), j), i)
				break
			}
		}
		if src, err := ParsePrefix(r.SourcePrefix); err != nil {
			fail("Invalid source address prefix", err.Error()+".", i, pathAllowedSourcePrefix)
		} else if !prefixAllowed(src, p.AllowedSourcePrefixes) {
			fail("Source not allowed", fmt.Sprintf("source %s does not lie inside any prefix the policy allows for port %s: %s.",
				r.SourcePrefix, portLabel(p.PortProtocol()), strings.Join(p.AllowedSourcePrefixes, ", ")), i, pathAllowedSourcePrefix)
		}
		if r.Duration <= 0 || r.Duration > p.MaxRequestAccessDuration {
			fail("Duration out of bounds", fmt.Sprintf("the duration must be positive and at most the policy's maximum for port %s, %s; it is %s.",
				portLabel(p.PortProtocol()), p.MaxRequestAccessDuration, r.Duration), i, pathDuration)
		}
	}
	return resolved, errs
}

func prefixAllowed(src Prefix, allowed []string) bool {
	for _, s := range allowed {
		if a, err := ParsePrefix(s); err == nil && a.Contains(src) {
			return true
		}
	}
	return false
}

func protocolSuffix(p Protocol) string {
	if p == "" {
		return ""
	}
	return "/" + string(p)
}

func policyPortList(policy []Port) string {
	if len(policy) == 0 {
		return "no port"
	}
	labels := make([]string, len(policy))
	for i, p := range policy {
		labels[i] = portLabel(p.PortProtocol())
	}
	return strings.Join(labels, ", ")
}
