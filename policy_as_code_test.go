package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
)

// The policy-as-code example (examples/policy-as-code), run as a pull
// request's CI would run it: the built provider under OpenTofu against the
// emulator, the native rule failing `tofu plan` through a postcondition,
// and the same rule in Rego, evaluated by OPA against `tofu show -json` of
// the plan. exposed.json has an Azure VM with SSH open to the Internet and
// an instance with RDP open to 0.0.0.0/0, neither under a jit_policy: both
// fail. In protected.json the VM is covered by a policy and the instance's
// RDP is open to the corporate network only: both pass. make test builds
// bin/tofu and bin/opa; the test skips only where they are missing.
func TestPolicyAsCodeExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the provider binary and runs OpenTofu and OPA")
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tofu, opa := filepath.Join(root, "bin", "tofu"), filepath.Join(root, "bin", "opa")
	for _, bin := range []string{tofu, opa} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("%s is missing (make tofu opa builds it): %v", bin, err)
		}
	}
	providerDir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(providerDir, "terraform-provider-jit"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	example := filepath.Join(root, "examples", "policy-as-code")

	for _, tc := range []struct {
		fixture string
		fails   bool
	}{{"exposed", true}, {"protected", false}} {
		t.Run(tc.fixture, func(t *testing.T) {
			fx, err := cloudsim.LoadFixture(filepath.Join(example, "testdata", tc.fixture+".json"))
			if err != nil {
				t.Fatal(err)
			}
			srv := startEmulator(t, fx)

			work := t.TempDir()
			for _, f := range []string{"main.tf", "policy/management_ports.rego"} {
				b, err := os.ReadFile(filepath.Join(example, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(filepath.Join(work, f)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(work, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rc := filepath.Join(work, "tofurc")
			if err := os.WriteFile(rc, []byte(`provider_installation {
  dev_overrides { "jitaccess/jit" = "`+providerDir+`" }
  direct {}
}
`), 0o644); err != nil {
				t.Fatal(err)
			}
			env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TF_CLI_CONFIG_FILE=" + rc, "TF_IN_AUTOMATION=1",
				"CHECKPOINT_DISABLE=1", "TF_VAR_azure_endpoint=" + srv.URL, "TF_VAR_aws_endpoint=" + srv.URL,
				"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}
			for _, kv := range srv.Env() {
				env = append(env, kv[0]+"="+kv[1])
			}
			run := func(name string, args ...string) (string, int) {
				cmd := exec.Command(name, args...)
				cmd.Dir, cmd.Env = work, env
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				var exit *exec.ExitError
				switch {
				case errors.As(err, &exit):
					return out.String(), exit.ExitCode()
				case err != nil:
					t.Fatalf("%s %v: %v", name, args, err)
				}
				return out.String(), 0
			}
			// OpenTofu wraps long diagnostics.
			unwrapped := func(s string) string { return strings.Join(strings.Fields(s), " ") }

			// The native rule.
			out, code := run(tofu, "plan", "-no-color", "-input=false")
			t.Logf("tofu plan exited %d", code)
			out = unwrapped(out)
			if tc.fails {
				if code == 0 || !strings.Contains(out, "Management ports open to the internet on machines no jit_policy covers") ||
					!strings.Contains(out, "virtualMachines/web (azure): ports 22, opened by") ||
					!strings.Contains(out, "networkSecurityGroups/web-nsg/securityRules/ssh-from-anywhere") ||
					!strings.Contains(out, "i-0abc1234def567890 (aws): ports 3389") {
					t.Fatalf("tofu plan exited %d; want a failure naming web and i-0abc1234def567890:\n%s", code, out)
				}
			} else if code != 0 {
				t.Fatalf("tofu plan exited %d:\n%s", code, out)
			}

			// The Rego rule, against the plan's JSON.
			if out, code := run(tofu, "plan", "-no-color", "-input=false", "-var", "enforce=false", "-out", "plan.tfplan"); code != 0 {
				t.Fatalf("tofu plan -out exited %d:\n%s", code, out)
			}
			planJSON, code := run(tofu, "show", "-json", "plan.tfplan")
			if code != 0 {
				t.Fatalf("tofu show -json exited %d:\n%s", code, planJSON)
			}
			if err := os.WriteFile(filepath.Join(work, "plan.json"), []byte(planJSON), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code = run(opa, "eval", "--fail-defined", "--format", "pretty", "-d", "policy", "-i", "plan.json", "data.jit.deny[msg]")
			t.Logf("opa eval exited %d:\n%s", code, out)
			out = unwrapped(out)
			if tc.fails {
				if code != 1 || !strings.Contains(out, "virtualMachines/web (azure) has management ports [22] open to the internet and no jit_policy") ||
					!strings.Contains(out, "i-0abc1234def567890 (aws) has management ports [3389]") {
					t.Fatalf("opa eval exited %d; want 1 and both machines named:\n%s", code, out)
				}
			} else if code != 0 {
				t.Fatalf("opa eval exited %d; want 0:\n%s", code, out)
			}
		})
	}
}
