package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
)

// Every HCL block of a guide is an example file (tffile), and every
// example directory a guide shows is applied here, as a user would run it:
// the built provider through a dev override, a real OpenTofu, the
// emulator seeded with testdata/guides.json. Only the provider block is
// pointed at the emulator: added when the example has none, overridden
// (an _override.tf file, its environment kept) when it has one. Each
// directory must apply, plan clean afterwards, and destroy leaving the
// clouds as they were.

var (
	tffileRef   = regexp.MustCompile(`\{\{\s*tffile\s+"([^"]+)"\s*\}\}`)
	inlineHCL   = regexp.MustCompile("(?m)^```(hcl|terraform|tf)\\s*$")
	environment = regexp.MustCompile(`(?m)^\s*environment\s*=\s*"([^"]+)"`)
)

// guideExampleDirs are the directories of the example files the guides
// show, each once, sorted; inline HCL in a guide fails the test.
func guideExampleDirs(t *testing.T) []string {
	t.Helper()
	guides, err := filepath.Glob("templates/guides/*.md.tmpl")
	if err != nil || len(guides) == 0 {
		t.Fatalf("no guides (%v)", err)
	}
	var dirs []string
	for _, g := range guides {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		if inlineHCL.Match(b) {
			t.Errorf("%s has an inline HCL block: put it in a file under examples/ and show it with tffile, so that it is applied", g)
		}
		for _, m := range tffileRef.FindAllStringSubmatch(string(b), -1) {
			if !strings.HasPrefix(m[1], "examples/") || !strings.HasSuffix(m[1], ".tf") {
				t.Errorf("%s shows %s: guides show .tf files under examples/", g, m[1])
				continue
			}
			if _, err := os.Stat(m[1]); err != nil {
				t.Errorf("%s shows %s: %v", g, m[1], err)
				continue
			}
			dirs = append(dirs, filepath.Dir(m[1]))
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

func TestGuideExamplesApplyAgainstTheEmulator(t *testing.T) {
	dirs := guideExampleDirs(t)
	tofu := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tofu == "" || testing.Short() || !strings.Contains(filepath.Base(tofu), "tofu") {
		t.Skip("needs OpenTofu in TF_ACC_TERRAFORM_PATH (make test sets it) and builds the provider binary")
	}
	bin := buildBinary(t)
	opaBin, err := filepath.Abs(filepath.Join("bin", "opa"))
	if err != nil {
		t.Fatal(err)
	}
	fx, err := cloudsim.LoadFixture("testdata/guides.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			srv := startEmulator(t, fx)
			before := worldJSON(t, srv)

			work := filepath.Join(t.TempDir(), "example")
			copyDir(t, dir, work)
			pointAtEmulator(t, work, srv)
			rc := filepath.Join(t.TempDir(), "tofurc")
			write(t, rc, fmt.Sprintf("provider_installation {\n  dev_overrides { \"jitaccess/jit\" = %q }\n  direct {}\n}\n", filepath.Dir(bin)))
			env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TF_CLI_CONFIG_FILE=" + rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
				"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}
			for _, kv := range srv.Env() {
				env = append(env, kv[0]+"="+kv[1])
			}
			run := func(args ...string) (string, int) {
				cmd := exec.Command(tofu, append(args, "-no-color", "-input=false")...)
				cmd.Dir, cmd.Env = work, env
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				var exit *exec.ExitError
				switch {
				case errors.As(err, &exit):
					return out.String(), exit.ExitCode()
				case err != nil:
					t.Fatal(err)
				}
				return out.String(), 0
			}
			rego, _ := filepath.Glob(filepath.Join(work, "policy", "*.rego"))
			if _, err := os.Stat(opaBin); len(rego) > 0 && err != nil {
				t.Skipf("%s has Rego policies and %s is missing (make opa builds it)", dir, opaBin)
			}
			opa := func() (string, int) {
				t.Helper()
				if out, code := run("plan", "-out", "plan.tfplan"); code != 0 {
					t.Fatalf("tofu plan -out: exit %d\n%s", code, out)
				}
				show := exec.Command(tofu, "show", "-json", "plan.tfplan")
				show.Dir, show.Env = work, env
				plan, err := show.Output()
				if err != nil {
					t.Fatalf("tofu show -json: %v", err)
				}
				write(t, filepath.Join(work, "plan.json"), string(plan))
				cmd := exec.Command(opaBin, "eval", "--fail-defined", "--format", "pretty", "-d", "policy", "-i", "plan.json", "data.jit.deny[msg]")
				cmd.Dir = work
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				switch {
				case errors.As(err, &exit):
					return string(out), exit.ExitCode()
				case err != nil:
					t.Fatal(err)
				}
				return string(out), 0
			}
			if len(rego) > 0 {
				// The example's own policies pass the requests it holds.
				if out, code := opa(); code != 0 {
					t.Fatalf("opa eval of the example's plan: exit %d, want 0\n%s", code, out)
				}
			}
			if out, code := run("apply", "-auto-approve"); code != 0 {
				t.Fatalf("tofu apply: exit %d\n%s", code, out)
			}
			// Applied as written: a second plan has nothing to do.
			if out, code := run("plan", "-detailed-exitcode"); code != 0 {
				t.Fatalf("tofu plan after apply: exit %d, want 0 (no changes)\n%s", code, out)
			}
			if dir == filepath.Join("examples", "requests-repo") {
				// A request without a ticket reference passes the provider's
				// checks and fails the repository's own rule.
				eve := filepath.Join(work, "requests", "eve-gh", "2026-11-24-look-around.yaml")
				if err := os.MkdirAll(filepath.Dir(eve), 0o755); err != nil {
					t.Fatal(err)
				}
				write(t, eve, "virtual_machine_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web\n"+
					"justification: just looking around\nports:\n  - number: 22\n    source: 203.0.113.9/32\n    duration: PT1H\n")
				out, code := opa()
				if code != 1 || !strings.Contains(out, `jit_access_request.this[\"requests/eve-gh/2026-11-24-look-around\"]`) || !strings.Contains(out, "ticket reference") ||
					strings.Contains(out, "alice-gh") || strings.Contains(out, "bob-gh") {
					t.Fatalf("opa eval with eve's request: exit %d, want 1 naming eve's request alone\n%s", code, out)
				}
				if err := os.Remove(eve); err != nil {
					t.Fatal(err)
				}
			}
			if out, code := run("destroy", "-auto-approve"); code != 0 {
				t.Fatalf("tofu destroy: exit %d\n%s", code, out)
			}
			if diff := jsonDiff("", before, worldJSON(t, srv)); len(diff) > 0 {
				t.Errorf("destroy left the clouds changed:\n%s", strings.Join(diff, "\n"))
			}
		})
	}
}

// pointAtEmulator adds the provider block the example lacks, or overrides
// the one it has (keeping its environment), aimed at srv; and names the
// provider's source when the example does not.
func pointAtEmulator(t *testing.T, dir string, srv *cloudsim.Server) {
	t.Helper()
	var all strings.Builder
	tf, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	for _, f := range tf {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	src := all.String()
	block := srv.ProviderBlock()
	if m := environment.FindStringSubmatch(src); m != nil {
		block = strings.Replace(block, "  azure {\n", fmt.Sprintf("  azure {\n    environment = %q\n", m[1]), 1)
	}
	if strings.Contains(src, `provider "jit"`) {
		write(t, filepath.Join(dir, "emulator_override.tf"), block)
	} else {
		write(t, filepath.Join(dir, "emulator.tf"), block)
	}
	if !strings.Contains(src, "required_providers") {
		write(t, filepath.Join(dir, "emulator_versions.tf"), "terraform {\n  required_providers {\n    jit = { source = \"jitaccess/jit\" }\n  }\n}\n")
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		write(t, filepath.Join(to, rel), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// jsonDiff lists where two JSON values differ, by path.
func jsonDiff(path string, a, b any) []string {
	if reflect.DeepEqual(a, b) {
		return nil
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		var out []string
		for _, k := range slices.Sorted(maps.Keys(av)) {
			out = append(out, jsonDiff(path+"."+k, av[k], bv[k])...)
		}
		for _, k := range slices.Sorted(maps.Keys(bv)) {
			if _, ok := av[k]; !ok {
				out = append(out, jsonDiff(path+"."+k, nil, bv[k])...)
			}
		}
		return out
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			break
		}
		var out []string
		for i := range av {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i])...)
		}
		return out
	}
	return []string{fmt.Sprintf("%s: %v → %v", path, a, b)}
}

// worldJSON is the emulated clouds' state as plain JSON values, without
// the IDs EC2 gives security group rules: a rule revoked and restored is
// the same rule under a new ID.
func worldJSON(t *testing.T, srv *cloudsim.Server) any {
	t.Helper()
	fx := srv.Snapshot()
	for i := range fx.AWS.SecurityGroups {
		for j := range fx.AWS.SecurityGroups[i].Ingress {
			fx.AWS.SecurityGroups[i].Ingress[j].ID = ""
		}
		for j := range fx.AWS.SecurityGroups[i].Egress {
			fx.AWS.SecurityGroups[i].Egress[j].ID = ""
		}
	}
	b, err := json.Marshal(fx)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
