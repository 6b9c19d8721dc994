package jit

import (
	"strings"
	"testing"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
)

var sgGrantStart = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func sgGrantRule(proto string, from, to int, cidr string) SGRule {
	return SGRule{IPProtocol: proto, FromPort: from, ToPort: to}.WithSource(cidr)
}

func TestGrantEndTags(t *testing.T) {
	tags := GrantEndTags(map[PortProtocol]time.Time{
		{22, ProtocolTCP}:   sgGrantStart.Add(time.Hour + 999*time.Millisecond),
		{53, ProtocolUDP}:   sgGrantStart.Add(time.Hour),
		{3389, ProtocolAny}: sgGrantStart.In(time.FixedZone("CET", 3600)),
	})
	want := map[string]string{"jit-end-22-tcp": "2026-11-23T10:00:00Z", "jit-end-53-udp": "2026-11-23T10:00:00Z", "jit-end-3389-any": "2026-11-23T09:00:00Z"}
	if len(tags) != len(want) {
		t.Fatalf("tags %v, want %v", tags, want)
	}
	for k, v := range want {
		if tags[k] != v || !IsGrantEndTag(k) {
			t.Errorf("%s = %q, want %q", k, tags[k], v)
		}
	}
	if IsGrantEndTag(TagGrant) || IsGrantEndTag("jit-policy") {
		t.Error("a marker or a policy tag read as a port's end")
	}
}

// A port's tag only ever brings its end forward: the marker bounds the
// group, and a port without a readable tag ends with it.
func TestSGGrantEndIsCappedByTheMarker(t *testing.T) {
	marker := GrantMarker("db", sgGrantStart.Add(time.Hour), "alice", "INC-1")
	marker, _ = ParseMarker(marker.String())
	ssh, dns := sgGrantRule("tcp", 22, 22, "203.0.113.7/32"), sgGrantRule("udp", 53, 53, "203.0.113.7/32")
	for _, tc := range []struct {
		what string
		tags map[string]string
		rule SGRule
		want time.Time
	}{
		{"no tag: the marker's end", nil, ssh, sgGrantStart.Add(time.Hour)},
		{"an earlier end", map[string]string{"jit-end-22-tcp": "2026-11-23T09:30:00Z"}, ssh, sgGrantStart.Add(30 * time.Minute)},
		{"a later end than the marker's", map[string]string{"jit-end-22-tcp": "2026-11-24T09:00:00Z"}, ssh, sgGrantStart.Add(time.Hour)},
		{"an unreadable end", map[string]string{"jit-end-22-tcp": "soon"}, ssh, sgGrantStart.Add(time.Hour)},
		{"the end of its port under *", map[string]string{"jit-end-53-any": "2026-11-23T09:10:00Z"}, dns, sgGrantStart.Add(10 * time.Minute)},
		{"another port's end", map[string]string{"jit-end-3389-tcp": "2026-11-23T09:10:00Z"}, ssh, sgGrantStart.Add(time.Hour)},
		{"a range ends with the marker", map[string]string{"jit-end-22-tcp": "2026-11-23T09:10:00Z"}, sgGrantRule("tcp", 20, 25, "203.0.113.7/32"), sgGrantStart.Add(time.Hour)},
	} {
		if got := SGGrantEnd(marker, tc.tags, tc.rule); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", tc.what, got, tc.want)
		}
	}
}

func TestSGRulePortAndOpensPort(t *testing.T) {
	for _, tc := range []struct {
		rule   SGRule
		port   PortProtocol
		single bool
		opens  bool
	}{
		{sgGrantRule("tcp", 22, 22, "10.0.0.0/8"), PortProtocol{22, ProtocolTCP}, true, true},
		{sgGrantRule("6", 22, 22, "10.0.0.0/8"), PortProtocol{22, ProtocolTCP}, true, true},
		{sgGrantRule("udp", 22, 22, "10.0.0.0/8"), PortProtocol{22, ProtocolTCP}, true, false},
		{sgGrantRule("udp", 22, 22, "10.0.0.0/8"), PortProtocol{22, ProtocolAny}, true, true},
		{sgGrantRule("tcp", 20, 25, "10.0.0.0/8"), PortProtocol{22, ProtocolTCP}, false, true},
		{sgGrantRule("tcp", 23, 25, "10.0.0.0/8"), PortProtocol{22, ProtocolTCP}, false, false},
		{sgGrantRule("-1", -1, -1, "10.0.0.0/8"), PortProtocol{22, ProtocolTCP}, false, true},
		{sgGrantRule("icmp", -1, -1, "10.0.0.0/8"), PortProtocol{22, ProtocolTCP}, false, false},
		{sgGrantRule("tcp", -1, -1, "10.0.0.0/8"), PortProtocol{3389, ProtocolTCP}, false, true},
	} {
		port, single := SGRulePort(tc.rule)
		if single != tc.single || (single && port.Number != tc.rule.FromPort) {
			t.Errorf("SGRulePort(%s) = %v %v", tc.rule, port, single)
		}
		if got := tc.rule.OpensPort(tc.port); got != tc.opens {
			t.Errorf("%s opens %v: %v, want %v", tc.rule, tc.port, got, tc.opens)
		}
	}
}

func TestSGGrantEnded(t *testing.T) {
	marker := GrantMarker("db", sgGrantStart.Add(time.Hour), "alice", "INC-1")
	tags := map[string]string{"jit-end-3389-tcp": "2026-11-23T09:30:00Z"}
	ssh, rdp := sgGrantRule("tcp", 22, 22, "203.0.113.7/32"), sgGrantRule("tcp", 3389, 3389, "203.0.113.7/32")
	clock := clocktest.New(sgGrantStart.Add(29 * time.Minute))
	if ended, over := SGGrantEnded(marker, tags, []SGRule{ssh, rdp}, clock); len(ended) != 0 || over {
		t.Errorf("before any end: %v %v", ended, over)
	}
	clock.Set(sgGrantStart.Add(30 * time.Minute)) // a port ends at its end exactly
	if ended, over := SGGrantEnded(marker, tags, []SGRule{ssh, rdp}, clock); len(ended) != 1 || ended[0] != rdp || over {
		t.Errorf("after 3389's end: %v %v", ended, over)
	}
	clock.Set(sgGrantStart.Add(time.Hour))
	if ended, over := SGGrantEnded(marker, tags, []SGRule{ssh, rdp}, clock); len(ended) != 2 || !over {
		t.Errorf("after the last end: %v %v", ended, over)
	}
	if _, over := SGGrantEnded(marker, tags, nil, clocktest.New(sgGrantStart)); over {
		t.Error("a group with no rule is over before its marker's end")
	}
	if _, over := SGGrantEnded(marker, tags, nil, clock); !over {
		t.Error("a group with no rule is not over after its marker's end")
	}
}

func TestJudgeSGGrant(t *testing.T) {
	request := "20261123T090000Z-7d2ca4bc"
	ports := []Port{
		{Number: 22, Protocol: ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: Duration(2 * time.Hour)},
		{Number: 3389, Protocol: ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: Duration(time.Hour)},
	}
	clock := clocktest.New(sgGrantStart.Add(10 * time.Minute))
	marker := func(policy string, end time.Duration) string {
		return GrantMarker(policy, sgGrantStart.Add(end), "alice", "INC-1").String()
	}
	ssh, rdp := sgGrantRule("tcp", 22, 22, "203.0.113.7/32"), sgGrantRule("tcp", 3389, 3389, "203.0.113.7/32")
	rdpEnd := map[string]string{"jit-end-3389-tcp": "2026-11-23T10:00:00Z"}
	for _, tc := range []struct {
		what    string
		marker  string
		request string
		tags    map[string]string
		rules   []SGRule
		ours    bool
		unfit   string // a word of the reason, "" when it fits
		over    bool
		ended   int
	}{
		{"a grant that fits", marker("db", time.Hour), request, nil, []SGRule{ssh}, true, "", false, 0},
		{"ports ending apart, each within its maximum", marker("db", 2*time.Hour), request, rdpEnd, []SGRule{ssh, rdp}, true, "", false, 0},
		{"a port whose end tag is gone, past its maximum", marker("db", 2*time.Hour), request, nil, []SGRule{ssh, rdp}, true, "beyond", false, 0},
		{"a source outside the prefixes", marker("db", time.Hour), request, nil, []SGRule{sgGrantRule("tcp", 22, 22, "198.51.100.0/24")}, true, "outside", false, 0},
		{"a widened range", marker("db", time.Hour), request, nil, []SGRule{ssh, sgGrantRule("tcp", 20, 25, "203.0.113.7/32")}, true, "one port", false, 0},
		{"all protocols", marker("db", time.Hour), request, nil, []SGRule{sgGrantRule("-1", -1, -1, "203.0.113.7/32")}, true, "one port", false, 0},
		{"a port the policy does not lock", marker("db", time.Hour), request, nil, []SGRule{sgGrantRule("tcp", 8080, 8080, "203.0.113.7/32")}, true, "not locked", false, 0},
		{"a prefix list source", marker("db", time.Hour), request, nil, []SGRule{sgGrantRule("tcp", 22, 22, "pl-0a1b2c3d4e5f60710")}, true, "no source", false, 0},
		{"no request", marker("db", time.Hour), "", nil, []SGRule{ssh}, true, "no request", false, 0},
		{"ended", marker("db", 5*time.Minute), request, nil, []SGRule{ssh}, true, "", true, 1},
		{"one port ended", marker("db", time.Hour), request, map[string]string{"jit-end-3389-tcp": "2026-11-23T09:05:00Z"}, []SGRule{ssh, rdp}, true, "", false, 1},
		{"another policy's grant", marker("web", time.Hour), request, nil, []SGRule{ssh}, false, "", false, 0},
		{"no marker", "granted by hand", request, nil, []SGRule{ssh}, false, "", false, 0},
	} {
		v := JudgeSGGrant(tc.marker, tc.request, tc.tags, tc.rules, "db", ports, clock)
		switch {
		case v.Ours != tc.ours || v.Over != tc.over || len(v.Ended) != tc.ended:
			t.Errorf("%s: ours %v over %v ended %v", tc.what, v.Ours, v.Over, v.Ended)
		case tc.unfit == "" && v.Unfit != "":
			t.Errorf("%s: unfit: %s", tc.what, v.Unfit)
		case tc.unfit != "" && !strings.Contains(v.Unfit, tc.unfit):
			t.Errorf("%s: unfit %q, want it to say %q", tc.what, v.Unfit, tc.unfit)
		}
		if honoured := tc.ours && tc.unfit == "" && !tc.over; v.Honoured() != honoured {
			t.Errorf("%s: honoured %v, want %v", tc.what, v.Honoured(), honoured)
		}
	}
}
