package jit

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPolicyTagsRoundTrip(t *testing.T) {
	ports := []Port{
		{Number: 22, Protocol: ProtocolTCP, AllowedSourcePrefixes: []string{"10.0.0.0/8", "192.168.0.0/16"}, MaxRequestAccessDuration: Duration(3 * time.Hour)},
		{Number: 53, Protocol: ProtocolAny, AllowedSourcePrefixes: []string{"*"}, MaxRequestAccessDuration: Duration(90 * time.Minute)},
		{Number: 53, Protocol: ProtocolUDP, AllowedSourcePrefixes: []string{"2001:db8::/32"}, MaxRequestAccessDuration: Duration(24 * time.Hour)},
	}
	firewall := "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/hub/providers/Microsoft.Network/azureFirewalls/fw"
	tags, err := PolicyTags("prod-web", firewall, ports)
	if err != nil {
		t.Fatal(err)
	}
	if tags[TagFirewall] != firewall {
		t.Errorf("firewall tag = %q, want %q", tags[TagFirewall], firewall)
	}
	for name := range tags {
		if strings.ContainsAny(name, `<>%&\?/`) || !IsPolicyTag(name) {
			t.Errorf("tag name %q is not a valid Azure tag name or not recognised as ours", name)
		}
	}
	tags["Environment"] = "prod" // someone else's tag is ignored
	policy, got, ok, err := PolicyFromTags(tags)
	if err != nil || !ok || policy != "prod-web" {
		t.Fatalf("PolicyFromTags = %q, %v, %v", policy, ok, err)
	}
	// ports is already sorted by number, then protocol ("*" < "UDP").
	if want := ports; !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestPolicyFromTagsWithoutPolicy(t *testing.T) {
	if _, _, ok, err := PolicyFromTags(map[string]string{"Name": "web"}); ok || err != nil {
		t.Fatalf("ok=%v err=%v, want false, nil", ok, err)
	}
}

func TestPolicyTagsRejectsOverlongValue(t *testing.T) {
	var prefixes []string
	for i := 0; i < 30; i++ {
		prefixes = append(prefixes, "203.0.113.0/24")
	}
	_, err := PolicyTags("p", "", []Port{{Number: 22, Protocol: ProtocolTCP, AllowedSourcePrefixes: prefixes, MaxRequestAccessDuration: Duration(time.Hour)}})
	if err == nil || !strings.Contains(err.Error(), "22/TCP") {
		t.Fatalf("err = %v, want a limit error naming the port", err)
	}
}

func TestPolicyFromTagsRejectsGarbage(t *testing.T) {
	for _, tags := range []map[string]string{
		{TagPolicy: "p", "jit-port-22-tcp": "PT3H"},
		{TagPolicy: "p", "jit-port-x-tcp": "PT3H *"},
		{TagPolicy: "p", "jit-port-22-icmp": "PT3H *"},
		{TagPolicy: "p", "jit-port-22-tcp": "3 hours *"},
	} {
		if _, _, _, err := PolicyFromTags(tags); err == nil {
			t.Errorf("PolicyFromTags(%v) accepted garbage", tags)
		}
	}
}
