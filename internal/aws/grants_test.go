package aws

import (
	"testing"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
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
