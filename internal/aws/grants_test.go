package aws

import (
	"slices"
	"testing"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Without AWS_CA_BUNDLE the config chain builds no HTTP client; the
// client must still reach EC2 (it once wrapped a nil client and crashed).
func TestNewWorksWithoutCABundle(t *testing.T) {
	sim, err := cloudsim.New(&cloudsim.Fixture{AWS: cloudsim.AWSFixture{Region: "eu-west-1"}}, cloudsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cloudsim.Start(sim, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, kv := range srv.Env() {
		t.Setenv(kv[0], kv[1])
	}
	for _, v := range []string{"AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	c, err := New(t.Context(), Config{Region: "eu-west-1", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GrantGroups(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A request's refresh finds a port granted only while the group grants it
// as requested: not once its rules were revoked (it ended first), nor
// while anything in the group widens it.
func TestHeldPorts(t *testing.T) {
	ssh, rdp := jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, jit.PortProtocol{Number: 3389, Protocol: jit.ProtocolTCP}
	ref := engine.GrantRef{Ports: []jit.PortProtocol{ssh, rdp}, Sources: map[jit.PortProtocol]string{ssh: "203.0.113.7/32", rdp: "203.0.113.7"}}
	rule := func(proto string, from, to int, cidr string) jit.SGRule {
		return jit.SGRule{IPProtocol: proto, FromPort: from, ToPort: to}.WithSource(cidr)
	}
	exact := []jit.SGRule{rule("tcp", 22, 22, "203.0.113.7/32"), rule("tcp", 3389, 3389, "203.0.113.7/32")}
	for _, tc := range []struct {
		what  string
		rules []jit.SGRule
		ref   engine.GrantRef
		want  []jit.PortProtocol
	}{
		{"exactly as requested", exact, ref, []jit.PortProtocol{ssh, rdp}},
		{"3389 revoked as it ended", exact[:1], ref, []jit.PortProtocol{ssh}},
		{"another source on 22", append(slices.Clone(exact), rule("tcp", 22, 22, "0.0.0.0/0")), ref, nil},
		{"a range over 22", append(slices.Clone(exact[1:]), rule("tcp", 20, 25, "203.0.113.7/32")), ref, nil},
		{"all protocols", append(slices.Clone(exact), rule("-1", -1, -1, "203.0.113.7/32")), ref, nil},
		{"a port nobody asked for", append(slices.Clone(exact), rule("tcp", 8080, 8080, "203.0.113.7/32")), ref, nil},
		{"sources unknown: what the group opens", append(slices.Clone(exact[:1]), rule("tcp", 20, 25, "0.0.0.0/0")),
			engine.GrantRef{Ports: ref.Ports}, []jit.PortProtocol{ssh}},
	} {
		if got := heldPorts(tc.rules, tc.ref); !slices.Equal(got, tc.want) {
			t.Errorf("%s: held %v, want %v", tc.what, got, tc.want)
		}
	}
}
