package aws

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An endpoint in plain HTTP to a host that is not loopback is refused
// wherever the AWS configuration sets it, as the SDK resolves it: not only
// the aws block and the environment, but a shared config file's
// endpoint_url and its [services] sections. Nothing is ever sent.
func TestNew_refusesPlainHTTPOffLoopbackWhereverTheConfigSetsIt(t *testing.T) {
	for name, file := range map[string]string{
		"default endpoint_url":     "[default]\nregion = eu-west-1\nendpoint_url = http://10.1.2.3:4566\n",
		"services section for EC2": "[default]\nregion = eu-west-1\nservices = lab\n\n[services lab]\nec2 =\n  endpoint_url = http://10.1.2.3:4566\n",
		"services section for STS": "[default]\nregion = eu-west-1\nservices = lab\n\n[services lab]\nsts =\n  endpoint_url = http://10.1.2.3:4566\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config")
			if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_CONFIG_FILE", path)
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
			t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
			_, err := New(t.Context(), Config{})
			if err == nil || !strings.Contains(err.Error(), "plain HTTP on a non-loopback host") {
				t.Fatalf("New = %v, want the plain-HTTP endpoint refused", err)
			}
		})
	}
}

// Whatever resolved an endpoint, the HTTP client refuses plain HTTP off
// loopback before dialing: the dialer below fails the test if reached.
func TestGuardedClient_refusesPlainHTTPOffLoopbackBeforeDialing(t *testing.T) {
	dialed := &http.Client{Transport: &http.Transport{DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
		t.Errorf("dialed %s", addr)
		return nil, net.ErrClosed
	}}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://10.1.2.3:4566/", strings.NewReader("Action=DescribeInstances"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (guardedClient{dialed}).Do(req); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Fatalf("Do = %v, want a refusal", err)
	}
}
