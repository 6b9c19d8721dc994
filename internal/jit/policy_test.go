package jit

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultPorts_areDefenders(t *testing.T) {
	ports := DefaultPorts()
	var numbers []int
	for _, p := range ports {
		numbers = append(numbers, p.Number)
		if p.Protocol != ProtocolTCP || !reflect.DeepEqual(p.AllowedSourcePrefixes, []string{"*"}) || p.MaxRequestAccessDuration.String() != "PT3H" {
			t.Errorf("default port %+v", p)
		}
	}
	if !reflect.DeepEqual(numbers, []int{22, 3389, 5985, 5986}) {
		t.Errorf("default port numbers %v", numbers)
	}
	if errs := ValidatePorts(ports); len(errs) != 0 {
		t.Errorf("defaults do not validate: %v", errs)
	}
	ports[0].AllowedSourcePrefixes[0] = "10.0.0.0/8"
	if DefaultPorts()[0].AllowedSourcePrefixes[0] != "*" {
		t.Error("DefaultPorts shares its slices between calls")
	}
}

func policyPort(n int, p Protocol, d string, prefixes ...string) Port {
	dur, err := ParseDuration(d)
	if err != nil {
		panic(err)
	}
	if len(prefixes) == 0 {
		prefixes = []string{"*"}
	}
	return Port{Number: n, Protocol: p, AllowedSourcePrefixes: prefixes, MaxRequestAccessDuration: dur}
}

func TestValidatePorts_addressesEachProblem(t *testing.T) {
	type want struct{ path, summary, detail string }
	for _, tc := range []struct {
		name  string
		ports []Port
		want  []want
	}{
		{"valid", []Port{policyPort(22, ProtocolTCP, "PT3H", "10.0.0.0/8", "2001:db8::/32", "203.0.113.7"), policyPort(22, ProtocolUDP, "PT5M"), policyPort(0, ProtocolAny, "P1D"), policyPort(65535, ProtocolTCP, "PT24H")}, nil},
		{"number too big", []Port{policyPort(65536, ProtocolTCP, "PT3H")}, []want{{"port[0].number", "Invalid port number", "65536"}}},
		{"number negative", []Port{policyPort(-1, ProtocolTCP, "PT3H")}, []want{{"port[0].number", "Invalid port number", "-1"}}},
		{"protocol", []Port{policyPort(22, "ICMP", "PT3H")}, []want{{"port[0].protocol", "Invalid protocol", `"ICMP"`}}},
		{"protocol lower case", []Port{policyPort(22, "tcp", "PT3H")}, []want{{"port[0].protocol", "Invalid protocol", `"tcp"`}}},
		{"same protocol twice", []Port{policyPort(22, ProtocolTCP, "PT3H"), policyPort(3389, ProtocolTCP, "PT3H"), policyPort(22, ProtocolTCP, "PT1H")},
			[]want{{"port[2]", "Duplicate port", "port 22/TCP overlaps port[0] (22/TCP)"}}},
		{"star overlaps TCP", []Port{policyPort(22, ProtocolTCP, "PT3H"), policyPort(22, ProtocolAny, "PT3H")},
			[]want{{"port[1]", "Duplicate port", "* stands for both TCP and UDP"}}},
		{"TCP overlaps star", []Port{policyPort(22, ProtocolAny, "PT3H"), policyPort(22, ProtocolUDP, "PT3H")},
			[]want{{"port[1]", "Duplicate port", "overlaps port[0] (22/*)"}}},
		{"no prefixes", []Port{{Number: 22, Protocol: ProtocolTCP, MaxRequestAccessDuration: Duration(time.Hour)}},
			[]want{{"port[0].allowed_source_address_prefixes", "No allowed source", `["*"]`}}},
		{"bad prefixes", []Port{policyPort(22, ProtocolTCP, "PT3H", "10.0.0.0/8", "Internet", "10.0.0.5/8")},
			[]want{
				{"port[0].allowed_source_address_prefixes[1]", "Invalid source address prefix", `"Internet" is not an IP address`},
				{"port[0].allowed_source_address_prefixes[2]", "Invalid source address prefix", "host bits"},
			}},
		{"duration too short", []Port{policyPort(22, ProtocolTCP, "PT4M59S")},
			[]want{{"port[0].max_request_access_duration", "Invalid maximum request duration", "between PT5M and P1D; it is PT4M59S"}}},
		{"duration too long", []Port{policyPort(22, ProtocolTCP, "P1DT1S")},
			[]want{{"port[0].max_request_access_duration", "Invalid maximum request duration", "it is P1DT1S"}}},
		{"duration unset", []Port{{Number: 22, Protocol: ProtocolTCP, AllowedSourcePrefixes: []string{"*"}}},
			[]want{{"port[0].max_request_access_duration", "Invalid maximum request duration", "it is PT0S"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidatePorts(tc.ports)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v; want %d", len(errs), errs, len(tc.want))
			}
			for i, w := range tc.want {
				e := errs[i]
				if e.PathString() != w.path || e.Summary != w.summary || !strings.Contains(e.Detail, w.detail) {
					t.Errorf("error %d = %q / %q / %q; want %q / %q / containing %q", i, e.PathString(), e.Summary, e.Detail, w.path, w.summary, w.detail)
				}
				if e.Path[0] != "port" {
					t.Errorf("path %v does not start at the port block", e.Path)
				}
			}
		})
	}
}

func TestFieldError_pathStepsAreTyped(t *testing.T) {
	errs := ValidatePorts([]Port{policyPort(22, ProtocolTCP, "PT3H", "x")})
	if len(errs) != 1 || !reflect.DeepEqual(errs[0].Path, []any{"port", 0, "allowed_source_address_prefixes", 0}) {
		t.Fatalf("got %#v", errs)
	}
	if got := errs[0].Error(); !strings.HasPrefix(got, "port[0].allowed_source_address_prefixes[0]: Invalid source address prefix: ") {
		t.Errorf("Error() = %q", got)
	}
}

func TestValidateRequest(t *testing.T) {
	policy := []Port{
		policyPort(22, ProtocolTCP, "PT3H", "10.0.0.0/8", "203.0.113.0/24"),
		policyPort(3389, ProtocolAny, "PT1H"),
		policyPort(53, ProtocolTCP, "PT1H"),
		policyPort(53, ProtocolUDP, "PT1H"),
	}
	hour := Duration(time.Hour)
	for _, tc := range []struct {
		name     string
		ports    []RequestedPort
		resolved []PortProtocol
		want     []string // "path|summary|detail fragment"
	}{
		{"narrower source, protocol resolved", []RequestedPort{{22, "", "203.0.113.7", hour}, {3389, "", "*", hour}},
			[]PortProtocol{{22, ProtocolTCP}, {3389, ProtocolAny}}, nil},
		{"TCP alone of a * port", []RequestedPort{{3389, ProtocolTCP, "198.51.100.1/32", hour}},
			[]PortProtocol{{3389, ProtocolTCP}}, nil},
		{"explicit protocol picks among two", []RequestedPort{{53, ProtocolUDP, "*", hour}},
			[]PortProtocol{{53, ProtocolUDP}}, nil},
		{"maximum exactly", []RequestedPort{{22, ProtocolTCP, "10.1.0.0/16", Duration(3 * time.Hour)}},
			[]PortProtocol{{22, ProtocolTCP}}, nil},
		{"port not in policy", []RequestedPort{{80, "", "*", hour}}, nil,
			[]string{"port[0].number|Port not in the policy|port 80 is not locked by the virtual machine's JIT policy, which locks 22/TCP, 3389/*, 53/TCP, 53/UDP"}},
		{"protocol mismatch", []RequestedPort{{22, ProtocolUDP, "10.0.0.1", hour}}, nil,
			[]string{"port[0].number|Port not in the policy|port 22/UDP"}},
		{"star against a TCP port", []RequestedPort{{22, ProtocolAny, "10.0.0.1", hour}}, nil,
			[]string{"port[0].number|Port not in the policy|port 22/*"}},
		{"ambiguous", []RequestedPort{{53, "", "*", hour}}, nil,
			[]string{"port[0].protocol|Ambiguous protocol|both TCP and UDP"}},
		{"invalid protocol", []RequestedPort{{22, "tcp", "10.0.0.1", hour}}, nil,
			[]string{`port[0].protocol|Invalid protocol|"tcp"`}},
		{"source wider than allowed", []RequestedPort{{22, "", "10.0.0.0/7", hour}}, nil,
			[]string{"port[0].allowed_source_address_prefix|Source not allowed|10.0.0.0/8, 203.0.113.0/24"}},
		{"any source against a narrow policy", []RequestedPort{{22, "", "*", hour}}, nil,
			[]string{"port[0].allowed_source_address_prefix|Source not allowed|source *"}},
		{"IPv6 source against IPv4 prefixes", []RequestedPort{{22, "", "2001:db8::1", hour}}, nil,
			[]string{"port[0].allowed_source_address_prefix|Source not allowed|2001:db8::1"}},
		{"bad source", []RequestedPort{{22, "", "10.0.0.1/8", hour}}, nil,
			[]string{"port[0].allowed_source_address_prefix|Invalid source address prefix|host bits"}},
		{"too long", []RequestedPort{{22, "", "10.0.0.1", Duration(3*time.Hour + time.Second)}}, nil,
			[]string{"port[0].duration|Duration out of bounds|port 22/TCP, PT3H; it is PT3H1S"}},
		{"zero duration", []RequestedPort{{22, "", "10.0.0.1", 0}}, nil,
			[]string{"port[0].duration|Duration out of bounds|it is PT0S"}},
		{"twice", []RequestedPort{{3389, ProtocolTCP, "*", hour}, {3389, "", "*", hour}}, nil,
			[]string{"port[1]|Duplicate port|port 3389/* is requested twice (see port[0])"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resolved, errs := ValidateRequest(policy, tc.ports)
			var got []string
			for _, e := range errs {
				got = append(got, e.PathString()+"|"+e.Summary+"|"+e.Detail)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors %q; want %q", got, tc.want)
			}
			for i, w := range tc.want {
				parts := strings.SplitN(w, "|", 3)
				if !strings.HasPrefix(got[i], parts[0]+"|"+parts[1]+"|") || !strings.Contains(got[i], parts[2]) {
					t.Errorf("error %q; want %q", got[i], w)
				}
			}
			if tc.want == nil && !reflect.DeepEqual(resolved, tc.resolved) {
				t.Errorf("resolved %v; want %v", resolved, tc.resolved)
			}
		})
	}
}
