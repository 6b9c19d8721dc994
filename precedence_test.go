package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
)

// The warnings of a policy's plan say what is true after the apply, judged
// on the whole path (subnet NSG, then NIC NSG), as an operator reads them
// in `tofu plan`: the layouts that exposed issue 12's items 2 to 4. Each
// case runs the provider built from this tree under OpenTofu against the
// emulator and reads the plan's diagnostics from `tofu plan -json`.
func TestPlanWarningsSayWhatIsTrueAfterTheApply(t *testing.T) {
	tofu := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tofu == "" {
		t.Skip("needs TF_ACC_TERRAFORM_PATH (make test sets it)")
	}
	bin := buildBinary(t)
	allow := func(name string, priority int32, source, destination, port string) cloudsim.AzureSecurityRule {
		return cloudsim.AzureSecurityRule{Name: name, Priority: priority, Direction: "Inbound", Access: "Allow", Protocol: "Tcp",
			SourceAddressPrefix: source, SourcePortRange: "*", DestinationAddressPrefix: destination, DestinationPortRange: port}
	}
	for _, tc := range []struct {
		name         string
		subnet, nic  []cloudsim.AzureSecurityRule
		ports        string
		want, absent []string // summaries, and "summary: words" the detail must hold
	}{
		{
			// 12.3: a bastion Allow in the NIC NSG, which the new deny in
			// the subnet NSG cuts off: access cut, not "kept open".
			name:   "a bastion allowed by the NIC NSG is cut by the subnet's deny",
			nic:    []cloudsim.AzureSecurityRule{allow("bastion-ssh", 300, "10.0.9.0/24", "*", "22")},
			want:   []string{"Existing access will be cut: bastion-ssh 10.0.9.0/24 port 22/TCP"},
			absent: []string{"Locked port stays open", "An existing rule keeps a locked port open"},
		},
		{
			name:   "a partner allowed in both NSGs stays open",
			subnet: []cloudsim.AzureSecurityRule{allow("partner-ssh", 300, "198.51.100.0/24", "*", "22")},
			nic:    []cloudsim.AzureSecurityRule{allow("partner-ssh", 300, "198.51.100.0/24", "*", "22")},
			want:   []string{"Locked port stays open: partner-ssh 198.51.100.0/24 port 22/TCP"},
			absent: []string{"Existing access will be cut"},
		},
		{
			// 12.4: a destination of Internet can never be a VM's private
			// address: nothing to warn about, nothing to follow.
			name:   "a rule to the Internet tag is not in the way",
			subnet: []cloudsim.AzureSecurityRule{allow("web-out", 300, "*", "Internet", "22")},
			nic:    []cloudsim.AzureSecurityRule{allow("web-out", 300, "*", "AzureLoadBalancer", "22")},
			absent: []string{"Locked port stays open", "Existing access will be cut", "Port cannot be locked", "An existing rule keeps a locked port open"},
		},
		{
			// 12.4: VirtualNetwork may hold the VM: judged conservatively,
			// and the warning says it was assumed.
			name:   "a rule to VirtualNetwork is assumed to match, and says so",
			subnet: []cloudsim.AzureSecurityRule{allow("vnet-ssh", 300, "10.0.0.0/8", "VirtualNetwork", "22")},
			nic:    []cloudsim.AzureSecurityRule{allow("vnet-ssh", 300, "10.0.0.0/8", "VirtualNetwork", "22")},
			want:   []string{"Locked port stays open: vnet-ssh VirtualNetwork assum"},
		},
		{
			// 12.2: no priority after an Allow at 4096: 22 cannot be locked
			// and says why; 3389 is locked all the same.
			name:   "an Allow at the last priority leaves its port unlocked and the others locked",
			subnet: []cloudsim.AzureSecurityRule{allow("allow-ssh-last", 4096, "*", "*", "22")},
			nic:    []cloudsim.AzureSecurityRule{allow("allow-ssh-last", 4096, "*", "*", "22")},
			ports:  "port {\n    number = 22\n  }\n  port {\n    number = 3389\n  }",
			want:   []string{"Port cannot be locked: allow-ssh-last port 22/TCP other ports", "Locked port stays open: allow-ssh-last"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ports := tc.ports
			if ports == "" {
				ports = "port {\n    number = 22\n  }"
			}
			diags, code := planJSON(t, tofu, bin, oneVMBehindTwoNSGs(tc.subnet, tc.nic), `resource "jit_policy" "web" {
  name                = "prod-web"
  virtual_machine_ids = ["`+precedenceVM+`"]
  `+ports+`
}`)
			if code != 0 {
				t.Fatalf("tofu plan exited %d: %+v", code, diags)
			}
			text := func(d planDiagnostic) string {
				return d.Summary + ": " + strings.Join(strings.Fields(d.Detail), " ")
			}
			for _, want := range tc.want {
				summary, words, _ := strings.Cut(want, ": ")
				found := false
				for _, d := range diags {
					if d.Severity != "warning" || d.Summary != summary {
						continue
					}
					found = true
					for _, w := range strings.Fields(words) {
						if !strings.Contains(text(d), w) {
							t.Errorf("warning %q lacks %q", text(d), w)
						}
					}
				}
				if !found {
					t.Errorf("no warning %q among %+v", summary, diags)
				}
			}
			for _, d := range diags {
				for _, absent := range tc.absent {
					if d.Summary == absent {
						t.Errorf("unexpected %s %q", d.Severity, text(d))
					}
				}
				if d.Severity == "error" {
					t.Errorf("error %q", text(d))
				}
			}
		})
	}
}

const (
	precedenceSub = "00000000-0000-0000-0000-0000000000c1"
	precedenceRG  = "/subscriptions/" + precedenceSub + "/resourceGroups/prod/providers/"
	precedenceVM  = precedenceRG + "Microsoft.Compute/virtualMachines/web"
)

// oneVMBehindTwoNSGs is a VM whose NIC has an NSG, in a subnet with another.
func oneVMBehindTwoNSGs(subnet, nic []cloudsim.AzureSecurityRule) *cloudsim.Fixture {
	vnet := precedenceRG + "Microsoft.Network/virtualNetworks/prod-vnet"
	subnetNSG, nicNSG := precedenceRG+"Microsoft.Network/networkSecurityGroups/web-subnet-nsg", precedenceRG+"Microsoft.Network/networkSecurityGroups/web-nic-nsg"
	nicID := precedenceRG + "Microsoft.Network/networkInterfaces/web-nic"
	return &cloudsim.Fixture{Azure: cloudsim.AzureFixture{
		SubscriptionID:        precedenceSub,
		VirtualNetworks:       []cloudsim.AzureVNet{{ID: vnet, AddressSpace: []string{"10.0.0.0/16"}, Subnets: []cloudsim.AzureSubnet{{Name: "web", AddressPrefix: "10.0.1.0/24", NetworkSecurityGroup: subnetNSG}}}},
		NetworkSecurityGroups: []cloudsim.AzureNSG{{ID: subnetNSG, SecurityRules: subnet}, {ID: nicNSG, SecurityRules: nic}},
		NetworkInterfaces: []cloudsim.AzureNIC{{ID: nicID, NetworkSecurityGroup: nicNSG,
			IPConfigurations: []cloudsim.AzureIPConfig{{Name: "ipconfig1", PrivateIP: "10.0.1.4", Subnet: vnet + "/subnets/web"}}}},
		VirtualMachines: []cloudsim.AzureVM{{ID: precedenceVM, NetworkInterfaces: []string{nicID}}},
	}}
}

type planDiagnostic struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
}

// planJSON runs `tofu plan -json` of resources with the provider at bin
// against an emulator of fx, and returns the plan's diagnostics.
func planJSON(t *testing.T, tofu, bin string, fx *cloudsim.Fixture, resources string) ([]planDiagnostic, int) {
	t.Helper()
	srv := startEmulator(t, fx)
	dir := t.TempDir()
	rc := filepath.Join(dir, "tofurc")
	write(t, rc, `provider_installation {
  dev_overrides { "jitaccess/jit" = "`+filepath.Dir(bin)+`" }
  direct {}
}
`)
	work := filepath.Join(dir, "config")
	write(t, filepath.Join(work, "main.tf"), "terraform {\n  required_providers {\n    jit = { source = \"jitaccess/jit\" }\n  }\n}\n\n"+srv.ProviderBlock()+"\n"+resources)
	cmd := exec.Command(tofu, "plan", "-json", "-no-color", "-input=false")
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TF_CLI_CONFIG_FILE=" + rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}
	for _, kv := range srv.Env() {
		cmd.Env = append(cmd.Env, kv[0]+"="+kv[1])
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	code := 0
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatal(err)
		}
		code = exit.ExitCode()
	}
	var diags []planDiagnostic
	lines := bufio.NewScanner(&out)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	for lines.Scan() {
		var msg struct {
			Type       string          `json:"type"`
			Diagnostic *planDiagnostic `json:"diagnostic"`
		}
		if json.Unmarshal(lines.Bytes(), &msg) == nil && msg.Type == "diagnostic" && msg.Diagnostic != nil {
			diags = append(diags, *msg.Diagnostic)
		}
	}
	return diags, code
}
