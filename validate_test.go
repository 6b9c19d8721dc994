package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// `tofu validate` needs no cloud and no credentials: every static error is
// the schema's to find, at the attribute where it was written. Run with
// the built binary through a dev override, as a user's CI would lint a
// configuration.
func TestValidateFindsStaticErrorsWithoutACloud(t *testing.T) {
	out, diags := validate(t, `resource "jit_policy" "p" {
  name                = "p"
  virtual_machine_ids = ["i-0abc1234def567890"]
  port {
    number                          = 22
    allowed_source_address_prefixes = ["not-a-cidr"]
    max_request_access_duration     = "three hours"
  }
}

resource "jit_access_request" "r" {
  virtual_machine_id = "i-0abc1234def567890"
  justification      = "INC-1"
  port {
    number                        = 22
    allowed_source_address_prefix = "10.0.0.1/8"
    duration                      = "an hour"
  }
}

ephemeral "jit_access" "e" {
  virtual_machine_id = "i-0abc1234def567890"
  justification      = "deploy"
  duration           = "P2D"
  port {
    number                        = 22
    allowed_source_address_prefix = "::1/129"
  }
}
`)
	want := map[string]string{ // the attribute as written → the summary
		`allowed_source_address_prefixes = ["not-a-cidr"]`: "Invalid source address prefix",
		`max_request_access_duration     = "three hours"`:  "Invalid maximum request duration",
		`allowed_source_address_prefix = "10.0.0.1/8"`:     "Invalid source address prefix",
		`duration                      = "an hour"`:        "Invalid duration",
		`duration           = "P2D"`:                       "Invalid duration",
		`allowed_source_address_prefix = "::1/129"`:        "Invalid source address prefix",
	}
	for _, d := range diags {
		if d.Severity != "error" || d.Snippet == nil {
			continue
		}
		for code, summary := range want {
			if strings.Contains(d.Snippet.Code, code) && d.Summary == summary {
				delete(want, code)
			}
		}
	}
	for code, summary := range want {
		t.Errorf("no %q error at %s; validate said:\n%s", summary, code, out)
	}
}

// Each mistake is told once, as what it is: an end time that is not RFC
// 3339 does not also read as a missing one, and a VM written twice in
// different case is said to be listed twice, not a lack of room in an NSG.
func TestValidateSaysTheOneThingThatIsWrong(t *testing.T) {
	out, diags := validate(t, `resource "jit_access_request" "r" {
  virtual_machine_id = "i-0abc1234def567890"
  justification      = "INC-1"
  port {
    number                        = 22
    allowed_source_address_prefix = "10.0.0.1/32"
    end_time_utc                  = "tomorrow"
  }
  port {
    number                        = 23
    allowed_source_address_prefix = "10.0.0.1/32"
    end_time_utc                  = "2026-11-29T10:00:00"
  }
}

resource "jit_policy" "p" {
  name                = "p"
  virtual_machine_ids = ["/subscriptions/s/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web", "/subscriptions/s/resourceGroups/PROD/providers/Microsoft.Compute/virtualMachines/WEB"]
}
`)
	var got []string
	for _, d := range diags {
		if d.Severity == "error" {
			got = append(got, d.Summary)
		}
	}
	want := []string{"Invalid RFC3339 String Value", "Invalid RFC3339 String Value", "Virtual machine listed twice"}
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("errors %q, want exactly %q:\n%s", got, want, out)
	}
}

type validateDiagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	Snippet  *struct {
		Code string `json:"code"`
	} `json:"snippet"`
}

// validate runs `tofu validate -json` on resources with the provider built
// from this tree, through a dev override: no cloud, no credentials.
func validate(t *testing.T, resources string) ([]byte, []validateDiagnostic) {
	t.Helper()
	tofu := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tofu == "" || testing.Short() {
		t.Skip("needs TF_ACC_TERRAFORM_PATH (make test sets it) and builds the provider binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "terraform-provider-jit"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rc := filepath.Join(dir, "tofurc")
	write(t, rc, `provider_installation {
  dev_overrides { "jitaccess/jit" = "`+bin+`" }
  direct {}
}
`)
	work := filepath.Join(dir, "config")
	write(t, filepath.Join(work, "main.tf"), `terraform {
  required_providers {
    jit = { source = "jitaccess/jit" }
  }
}

`+resources)
	cmd := exec.Command(tofu, "validate", "-json", "-no-color")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc)
	out, _ := cmd.Output() // validate exits 1 on errors; the JSON says which
	var result struct {
		Diagnostics []validateDiagnostic `json:"diagnostics"`
	}
	if err := json.Unmarshal(out, &result); err != nil {
		t.Fatalf("tofu validate -json: %v\n%s", err, out)
	}
	return out, result.Diagnostics
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
