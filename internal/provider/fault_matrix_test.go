package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The fault matrix: every write the provider makes, under every fault a
// cloud deals out, through the CLI. Each cell drives one lifecycle of a
// policy and a request on the cloud that makes the write (create the
// policy, add a request, remove the request and a port, remove the
// policy), with the fault injected into every call of the write in every
// phase. After each phase the apply succeeded, or failed with a clear
// error and the next apply (faults cleared) converged; either way nothing
// of the policy or the request is missing or there twice, the state knows
// every JIT object the cloud holds and the cloud every one the state
// records, a foreign writer's rules, groups and tags are byte for byte as
// they were, and after the last phase the cloud is as before the first.

// fmOutcome is what a cell's faulted applies end in.
type fmOutcome int

const (
	// fmRetried: the provider retried the write and the apply succeeded.
	fmRetried fmOutcome = iota
	// fmFails: the apply failed with a clear error; the next one converged.
	fmFails
)

func (o fmOutcome) String() string {
	if o == fmRetried {
		return "succeeded-after-retry"
	}
	return "failed-clearly-then-converged"
}

// Timeouts of the timeout cells: the write's latency outlasts the
// resource's timeout, the apply gives up, and the write still lands.
const (
	fmTimeout = time.Second
	fmLatency = 1500 * time.Millisecond
	// fmRetryAfter is announced by throttling and conflicts: short, so the
	// matrix stays fast.
	fmRetryAfter = 50 * time.Millisecond
)

// fmFault is one column of the matrix: the fault a cell injects into a
// write, and what the apply ends in.
type fmFault struct {
	name    string
	fault   cloudsim.Fault
	outcome fmOutcome
	// want is what the error says, for cells that fail.
	want string
}

// fmFaults are the columns for an operation of a cloud (arm: ARM,
// otherwise EC2); lro tells whether the write is a long-running operation.
func fmFaults(op string, arm, lro bool) []fmFault {
	var fs []fmFault
	if arm {
		fs = append(fs,
			fmFault{name: "throttled", fault: cloudsim.Fault{FailNext: 2, Status: 429, Code: "TooManyRequests", RetryAfter: fmRetryAfter, RetryAfterIn: []string{cloudsim.RetryAfterFractional}}},
			fmFault{name: "conflict", fault: cloudsim.Fault{FailNext: 2, Status: 409, Code: "AnotherOperationInProgress", RetryAfter: fmRetryAfter, RetryAfterIn: []string{cloudsim.RetryAfterFractional}}},
			fmFault{name: "server-error", fault: cloudsim.Fault{FailNext: 2, Status: 500, Code: "InternalServerError"}})
	} else {
		// EC2 throttles with 503 RequestLimitExceeded. It has no "another
		// operation in progress" for security groups: the nearest it
		// answers are ConcurrentTagAccess on tags ("retry your request"),
		// DependencyViolation while a group is still attached, and
		// IncorrectState for a resource that is changing, which is not
		// worth repeating.
		conflict := fmFault{name: "conflict", fault: cloudsim.Fault{FailNext: 2, Status: 400, Code: "IncorrectState"}, outcome: fmFails, want: "IncorrectState"}
		switch op {
		case "CreateTags", "DeleteTags":
			conflict = fmFault{name: "conflict", fault: cloudsim.Fault{FailNext: 2, Status: 400, Code: "ConcurrentTagAccess"}}
		case "DeleteSecurityGroup":
			conflict = fmFault{name: "conflict", fault: cloudsim.Fault{FailNext: 2, Status: 400, Code: "DependencyViolation"}}
		}
		fs = append(fs,
			fmFault{name: "throttled", fault: cloudsim.Fault{FailNext: 2, Status: 503, Code: "RequestLimitExceeded", RetryAfter: fmRetryAfter, RetryAfterIn: []string{cloudsim.RetryAfterFractional}}},
			conflict,
			fmFault{name: "server-error", fault: cloudsim.Fault{FailNext: 2, Status: 500, Code: "InternalError"}})
	}
	fs = append(fs,
		fmFault{name: "timeout", fault: cloudsim.Fault{Latency: fmLatency}, outcome: fmFails, want: `(?i)timed out|timeout|deadline`},
		fmFault{name: "dropped", fault: cloudsim.Fault{DropAfterWrite: 1}})
	if lro {
		fs = append(fs, fmFault{name: "operation-failed", fault: cloudsim.Fault{FailOperationNext: 1}})
	}
	for i := range fs {
		fs[i].fault.Operation = op
	}
	return fs
}

// fmPhases are a cell's applies: the policy (22 and 3389), the policy and a
// request for 22, the policy down to 22 with the request gone, nothing.
var fmPhases = []string{"policy", "policy+request", "port-and-request-removed", "destroyed"}

// fmFlow is the lifecycle a cell drives on one cloud.
type fmFlow struct {
	name    string
	fixture string
	machine string
	// policyExtra is added to the policy block (a firewall).
	policyExtra string
	// seed writes a foreign writer's rules, groups and tags.
	seed func(t *testing.T, c *testCloud)
	// foreign is everything of others the cloud holds, to compare byte for byte.
	foreign func(t *testing.T, c *testCloud) string
	// objects are the JIT objects the cloud holds, as "target|name".
	objects func(t *testing.T, c *testCloud) []string
	// stateObjects are those the state records.
	stateObjects func(s *terraform.State) []string
	// expect checks what a phase must leave of the policy and the request.
	expect func(t *testing.T, c *testCloud, phase int) error
	// snapshot and restored compare the world before the first phase
	// with the world after the last.
	snapshot func(t *testing.T, c *testCloud) any
	restored func(t *testing.T, c *testCloud, before any) error
}

func (f *fmFlow) config(c *testCloud, phase int, timeouts string) string {
	if phase == 3 {
		return c.config("")
	}
	ports := []int{22, 3389}
	if phase == 2 {
		ports = ports[:1]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "resource \"jit_policy\" \"p\" {\n  name                = %q\n  virtual_machine_ids = [%q]\n%s", fmPolicy, f.machine, f.policyExtra)
	for _, p := range ports {
		fmt.Fprintf(&b, "  port {\n    number                          = %d\n    allowed_source_address_prefixes = [\"203.0.113.0/24\"]\n    max_request_access_duration     = \"PT2H\"\n  }\n", p)
	}
	b.WriteString(timeouts + "}\n")
	if phase == 1 {
		b.WriteString(`
resource "jit_access_request" "alice" {
  virtual_machine_id = one(jit_policy.p.virtual_machine_ids)
  justification      = "INC-4211 disk full"
  on_behalf_of       = "alice@example.com"
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration                      = "PT1H"
  }
` + timeouts + "}\n")
	}
	return c.config(b.String())
}

const fmPolicy = "fm"

// fmTimeouts is the timeouts block of the timeout cells.
var fmTimeouts = fmt.Sprintf("  timeouts {\n    create = %[1]q\n    update = %[1]q\n    delete = %[1]q\n  }\n", fmTimeout.String())

// --- what the state records

// fmStateRules are the rules of every JIT resource in the state, as
// "target|name" with the target lower-cased, and, for a request through a
// firewall, the network Allow collection beside its DNAT rule.
func fmStateRules(s *terraform.State, firewallAllow bool) []string {
	var out []string
	for addr, r := range s.RootModule().Resources {
		if !strings.HasPrefix(addr, "jit_") || r.Primary == nil {
			continue
		}
		a := r.Primary.Attributes
		firewall := ""
		for i := range atoi(a["rules.#"]) {
			target := strings.ToLower(a[fmt.Sprintf("rules.%d.target_id", i)])
			out = append(out, target+"|"+a[fmt.Sprintf("rules.%d.name", i)])
			if strings.Contains(target, "/azurefirewalls/") {
				firewall = target
			}
		}
		if r.Type == "jit_access_request" && firewallAllow && firewall != "" {
			// A grant through the firewall is a DNAT and a network Allow
			// collection of the same name.
			out = append(out, firewall+"|"+jit.FirewallGrantCollectionName(a["id"], a["virtual_machine_id"])+"#allow")
		}
	}
	slices.Sort(out)
	return out
}

// fmStateRecords are the tags a state's requests and policy account for on
// their machine: the policy's settings, and each request's record.
func fmStateRecords(s *terraform.State) []string {
	var out []string
	for _, r := range s.RootModule().Resources {
		if r.Primary == nil {
			continue
		}
		a := r.Primary.Attributes
		switch r.Type {
		case "jit_policy":
			for i := range atoi(a["virtual_machine_ids.#"]) {
				out = append(out, strings.ToLower(a[fmt.Sprintf("virtual_machine_ids.%d", i)])+"|settings")
			}
		case "jit_access_request":
			if a["on_behalf_of"] != "" && !strings.HasPrefix(a["virtual_machine_id"], "i-") {
				out = append(out, strings.ToLower(a["virtual_machine_id"])+"|record:"+a["id"])
			}
		}
	}
	slices.Sort(out)
	return out
}

// --- the Azure flows

// fmAzureSeed writes rules of others in both NSGs of web's path: one
// where the 3389 deny would go, one below the grants' place, one deciding
// 3389 late in the subnet NSG.
func fmAzureSeed(t *testing.T, c *testCloud) {
	c.putRule(t, "web-nic-nsg", inbound("foreign-app", 1001, jit.NSGAllow, "8080"))
	c.putRule(t, "web-nic-nsg", inbound("foreign-low", 990, jit.NSGAllow, "443"))
	c.putRule(t, "web-subnet-nsg", inbound("foreign-rdp-deny", 1500, jit.NSGDeny, "3389"))
}

// isJITTag tells the provider's tags from everyone else's.
func isJITTag(k string) bool { return strings.HasPrefix(k, "jit-") || strings.HasPrefix(k, "jit:") }

func fmJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fmCollectionName(t *testing.T, raw json.RawMessage) string {
	var col struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &col); err != nil {
		t.Fatal(err)
	}
	return col.Name
}

func isJITCollection(name string) bool {
	return name == jit.FirewallDenyCollectionName(fmPolicy) || jit.IsFirewallGrantCollection(name)
}

// fmAzureForeign is every rule, collection and tag of others in the
// emulated Azure, as the emulator holds them.
func fmAzureForeign(t *testing.T, c *testCloud) string {
	az := c.Snapshot().Azure
	var out []string
	for _, nsg := range az.NetworkSecurityGroups {
		out = append(out, "nsg "+nsg.ID+" tags "+fmJSON(t, nsg.Tags))
		for _, r := range nsg.SecurityRules {
			if _, ours := jit.ParseMarker(r.Description); !ours {
				out = append(out, "nsg "+nsg.ID+" "+fmJSON(t, r))
			}
		}
	}
	for _, fw := range az.Firewalls {
		for kind, cols := range map[string][]json.RawMessage{"network": fw.NetworkRuleCollections, "nat": fw.NATRuleCollections, "application": fw.ApplicationRuleCollections} {
			for _, col := range cols {
				if !isJITCollection(fmCollectionName(t, col)) {
					out = append(out, "firewall "+fw.ID+" "+kind+" "+string(col))
				}
			}
		}
		out = append(out, "firewall "+fw.ID+" "+fmJSON(t, fw.Unmodelled)+fmJSON(t, fw.Tags))
	}
	for _, vm := range az.VirtualMachines {
		tags := map[string]string{} // none and an empty map alike
		maps.Copy(tags, vm.Tags)
		maps.DeleteFunc(tags, func(k, _ string) bool { return isJITTag(k) })
		out = append(out, "vm "+vm.ID+" "+fmJSON(t, tags))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// fmAzureObjects are the JIT rules, collections and tags in the emulated
// Azure, as "target|name".
func fmAzureObjects(t *testing.T, c *testCloud) []string {
	az := c.Snapshot().Azure
	var out []string
	for _, nsg := range az.NetworkSecurityGroups {
		for _, r := range nsg.SecurityRules {
			if _, ours := jit.ParseMarker(r.Description); ours {
				out = append(out, strings.ToLower(nsg.ID)+"|"+r.Name)
			}
		}
	}
	for _, fw := range az.Firewalls {
		id := strings.ToLower(fw.ID)
		for kind, cols := range map[string][]json.RawMessage{"network": fw.NetworkRuleCollections, "nat": fw.NATRuleCollections} {
			for _, raw := range cols {
				name := fmCollectionName(t, raw)
				if !isJITCollection(name) {
					continue
				}
				if kind == "network" && jit.IsFirewallGrantCollection(name) {
					out = append(out, id+"|"+name+"#allow")
					continue
				}
				var col struct {
					Properties struct {
						Rules []struct {
							Name string `json:"name"`
						} `json:"rules"`
					} `json:"properties"`
				}
				if err := json.Unmarshal(raw, &col); err != nil {
					t.Fatal(err)
				}
				for _, r := range col.Properties.Rules {
					out = append(out, id+"|"+r.Name)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// fmAzureRecords are the JIT tags of the emulated VMs, as the state
// accounts for them.
func fmAzureRecords(c *testCloud) []string {
	seen := map[string]bool{}
	for _, vm := range c.Snapshot().Azure.VirtualMachines {
		for k := range vm.Tags {
			switch {
			case jit.IsPolicyTag(k):
				seen[strings.ToLower(vm.ID)+"|settings"] = true
			case strings.HasPrefix(k, "jit-record-"):
				rest := strings.TrimPrefix(k, "jit-record-")
				// The request ID is "<start>-<suffix>"; the field follows.
				parts := strings.SplitN(rest, "-", 3)
				if len(parts) == 3 {
					seen[strings.ToLower(vm.ID)+"|record:"+parts[0]+"-"+parts[1]] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// fmNSGRules lists the JIT rules of an NSG as "deny 22->dest" and
// "grant 22<-source".
func fmNSGRules(t *testing.T, c *testCloud, nsg string) []string {
	var out []string
	for _, r := range c.nsgRules(t, nsg) {
		m, ok := jit.ParseMarker(r.Description)
		switch {
		case !ok:
		case m.Kind == jit.MarkerDeny:
			out = append(out, fmt.Sprintf("deny %s->%s", strings.Join(r.DestinationPortRanges, ","), strings.Join(r.DestinationPrefixes, ",")))
		case m.Kind == jit.MarkerGrant:
			out = append(out, fmt.Sprintf("grant %s<-%s", strings.Join(r.DestinationPortRanges, ","), strings.Join(r.SourcePrefixes, ",")))
		}
	}
	slices.Sort(out)
	return out
}

func fmAzureExpect(grantSource string, firewall bool) func(t *testing.T, c *testCloud, phase int) error {
	return func(t *testing.T, c *testCloud, phase int) error {
		var want []string
		switch phase {
		case 0:
			want = []string{"deny 22->10.0.1.4", "deny 3389->10.0.1.4"}
		case 1:
			want = []string{"deny 22->10.0.1.4", "deny 3389->10.0.1.4", "grant 22<-" + grantSource}
		case 2:
			want = []string{"deny 22->10.0.1.4"}
		}
		for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
			if got := fmNSGRules(t, c, nsg); !slices.Equal(got, want) {
				return fmt.Errorf("%s after %s: JIT rules %q, want %q", nsg, fmPhases[phase], got, want)
			}
		}
		if !firewall {
			return nil
		}
		fw, err := c.azureClient(t).Firewall(t.Context(), testFirewall+"fw-hub")
		if err != nil {
			return err
		}
		var got []string
		for _, col := range fw.NetworkCollections {
			for _, r := range col.Rules {
				if col.Name == jit.FirewallDenyCollectionName(fmPolicy) {
					got = append(got, "deny "+strings.Join(r.DestinationPorts, ",")+"->"+strings.Join(r.DestinationAddresses, ","))
				}
			}
		}
		for _, col := range fw.NATCollections {
			if jit.IsFirewallGrantCollection(col.Name) {
				for _, r := range col.Rules {
					got = append(got, "dnat "+strings.Join(r.SourceAddresses, ",")+"->"+r.TranslatedAddress+":"+r.TranslatedPort)
				}
			}
		}
		slices.Sort(got)
		var wantFW []string
		switch phase {
		case 0:
			wantFW = []string{"deny 22->10.0.1.4", "deny 3389->10.0.1.4"}
		case 1:
			wantFW = []string{"deny 22->10.0.1.4", "deny 3389->10.0.1.4", "dnat 203.0.113.7/32->10.0.1.4:22"}
		case 2:
			wantFW = []string{"deny 22->10.0.1.4"}
		}
		if !slices.Equal(got, wantFW) {
			return fmt.Errorf("firewall after %s: JIT rules %q, want %q", fmPhases[phase], got, wantFW)
		}
		return nil
	}
}

func fmAzureFlow(name, policyExtra, grantSource string, firewall bool) *fmFlow {
	return &fmFlow{
		name: name, fixture: "world", machine: testVM + "web", policyExtra: policyExtra,
		seed:    fmAzureSeed,
		foreign: fmAzureForeign,
		objects: func(t *testing.T, c *testCloud) []string {
			return append(fmAzureObjects(t, c), fmAzureRecords(c)...)
		},
		stateObjects: func(s *terraform.State) []string {
			return append(fmStateRules(s, true), fmStateRecords(s)...)
		},
		expect:   fmAzureExpect(grantSource, firewall),
		snapshot: func(_ *testing.T, c *testCloud) any { return c.Snapshot().Azure },
		restored: func(t *testing.T, c *testCloud, before any) error {
			if after := c.Snapshot().Azure; !reflect.DeepEqual(before, after) {
				return fmt.Errorf("Azure not as before the first phase:\nbefore %s\nafter  %s", fmJSON(t, before), fmJSON(t, after))
			}
			return nil
		},
	}
}

// --- the EC2 flow

const fmENI = "eni-000000000000000b2" // ec2Range's primary network interface

// fmAWSSeed adds a rule of others beside the one the policy narrows, tags
// the group, and attaches another group to the instance's interface.
func fmAWSSeed(t *testing.T, c *testCloud) {
	authorizeRaw(t, c, sgRange, "tcp 443 198.51.100.0/24")
	client := c.ec2Client(t)
	if _, err := client.CreateTags(t.Context(), &ec2.CreateTagsInput{Resources: []string{sgRange, ec2Range}, Tags: []ec2types.Tag{{Key: awssdk.String("owner"), Value: awssdk.String("netops")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ModifyNetworkInterfaceAttribute(t.Context(), &ec2.ModifyNetworkInterfaceAttributeInput{
		NetworkInterfaceId: awssdk.String(fmENI), Groups: []string{sgRange, sgBastion},
	}); err != nil {
		t.Fatal(err)
	}
}

// narrowed tells the rule of sgRange the policy narrows, and the
// remainders it leaves of it: expect checks them, the rest is others'.
func narrowed(group string, r cloudsim.AWSRule) bool {
	return group == sgRange && r.CIDRIPv4 == "10.0.0.0/8" && r.Description == "office VPN"
}

// fmAWSForeign is every rule, group and tag of others in the emulated
// EC2, as the emulator holds them (rule IDs included), but the rule the
// policy narrows.
func fmAWSForeign(t *testing.T, c *testCloud) string {
	a := c.Snapshot().AWS
	grant := map[string]bool{}
	var out []string
	for _, g := range a.SecurityGroups {
		if _, ok := g.Tags[jit.TagGrant]; ok {
			grant[g.ID] = true
			continue
		}
		tags := maps.Clone(g.Tags)
		maps.DeleteFunc(tags, func(k, _ string) bool { return isJITTag(k) })
		out = append(out, "sg "+g.ID+" "+g.Name+" "+g.Description+" "+fmJSON(t, tags)+" egress "+fmJSON(t, g.Egress))
		for _, r := range g.Ingress {
			if !narrowed(g.ID, r) {
				out = append(out, "sg "+g.ID+" "+fmJSON(t, r))
			}
		}
	}
	for _, eni := range a.NetworkInterfaces {
		others := slices.DeleteFunc(slices.Clone(eni.Groups), func(g string) bool { return grant[g] })
		out = append(out, "eni "+eni.ID+" "+fmJSON(t, others))
	}
	for _, i := range a.Instances {
		tags := maps.Clone(i.Tags)
		maps.DeleteFunc(tags, func(k, _ string) bool { return isJITTag(k) })
		out = append(out, "instance "+i.ID+" "+fmJSON(t, tags))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// fmAWSObjects are the grant groups, as "group|eni" for each interface
// carrying one, the groups holding the policy's backup, and the instances
// carrying its settings.
func fmAWSObjects(t *testing.T, c *testCloud) []string {
	a := c.Snapshot().AWS
	var out []string
	for _, g := range a.SecurityGroups {
		if _, ok := g.Tags[jit.TagGrant]; ok {
			carried := false
			for _, eni := range a.NetworkInterfaces {
				if slices.Contains(eni.Groups, g.ID) {
					out = append(out, strings.ToLower(g.ID)+"|"+eni.ID)
					carried = true
				}
			}
			if !carried {
				out = append(out, strings.ToLower(g.ID)+"|(detached)")
			}
		}
		if slices.ContainsFunc(slices.Collect(maps.Keys(g.Tags)), func(k string) bool { return strings.HasPrefix(k, "jit:backup:") }) {
			out = append(out, strings.ToLower(g.ID)+"|backup")
		}
	}
	for _, i := range a.Instances {
		if slices.ContainsFunc(slices.Collect(maps.Keys(i.Tags)), jit.IsPolicyTag) {
			out = append(out, strings.ToLower(i.ID)+"|settings")
		}
	}
	slices.Sort(out)
	return out
}

// fmAWSStateObjects are those the state accounts for: the requests' grant
// groups, the groups the policy revoked rules in, its instances.
func fmAWSStateObjects(s *terraform.State) []string {
	out := fmStateRules(s, false)
	seen := map[string]bool{}
	for _, r := range s.RootModule().Resources {
		if r.Type != "jit_policy" || r.Primary == nil {
			continue
		}
		a := r.Primary.Attributes
		for i := range atoi(a["revoked_ingress_rules.#"]) {
			seen[strings.ToLower(a[fmt.Sprintf("revoked_ingress_rules.%d.security_group_id", i)])+"|backup"] = true
		}
	}
	out = append(append(out, slices.Collect(maps.Keys(seen))...), fmStateRecords(s)...)
	slices.Sort(out)
	return out
}

func fmAWSExpect(t *testing.T, c *testCloud, phase int) error {
	foreign := `tcp 443 443 198.51.100.0/24 ""`
	var rules []string
	switch phase {
	case 0, 1:
		rules = []string{`tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 3388 10.0.0.0/8 "office VPN"`, `tcp 3390 65535 10.0.0.0/8 "office VPN"`, foreign}
	case 2:
		rules = []string{`tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 65535 10.0.0.0/8 "office VPN"`, foreign}
	case 3:
		rules = []string{`tcp 0 65535 10.0.0.0/8 "office VPN"`, foreign}
	}
	if err := expectIngress(t, c, sgRange, rules...)(nil); err != nil {
		return fmt.Errorf("after %s: %w", fmPhases[phase], err)
	}
	groups := c.grantGroups(t)
	eni := c.eniGroups(t, fmENI)
	switch {
	case phase != 1 && len(groups) > 0:
		return fmt.Errorf("after %s: grant groups %v", fmPhases[phase], groups)
	case phase == 1 && (len(groups) != 1 || !strings.HasSuffix(groups[0], " tcp:22<-203.0.113.7/32")):
		return fmt.Errorf("after %s: grant groups %v, want one granting 22 to 203.0.113.7/32", fmPhases[phase], groups)
	case phase == 1 && !slices.Equal(eni, []string{sgRange, sgBastion, strings.Fields(groups[0])[0]}):
		return fmt.Errorf("after %s: %s carries %v, want its groups and the grant's once", fmPhases[phase], fmENI, eni)
	case phase != 1 && !slices.Equal(eni, []string{sgRange, sgBastion}):
		return fmt.Errorf("after %s: %s carries %v", fmPhases[phase], fmENI, eni)
	}
	return nil
}

var fmAWS = &fmFlow{
	name: "ec2", fixture: "aws", machine: ec2Range,
	seed:         fmAWSSeed,
	foreign:      fmAWSForeign,
	objects:      fmAWSObjects,
	stateObjects: fmAWSStateObjects,
	expect:       fmAWSExpect,
	snapshot:     func(t *testing.T, c *testCloud) any { return c.awsWorld(t, ec2Range) },
	restored: func(t *testing.T, c *testCloud, before any) error {
		return c.restored(t, before.(awsWorld), ec2Range)(nil)
	},
}

var (
	fmAzureNSG      = fmAzureFlow("azure", "", "203.0.113.7/32", false)
	fmAzureFirewall = fmAzureFlow("azure-firewall", `  azure_firewall_id   = "`+testFirewall+`fw-hub"`+"\n", "10.100.0.0/26", true)
)

// fmOperations are the matrix's rows: each write and the flow making it.
var fmOperations = []struct {
	op       string
	flow     *fmFlow
	arm, lro bool
}{
	{"SecurityRules.CreateOrUpdate", fmAzureNSG, true, true},
	{"SecurityRules.Delete", fmAzureNSG, true, true},
	{"AzureFirewalls.CreateOrUpdate", fmAzureFirewall, true, true},
	{"VirtualMachines.Update", fmAzureNSG, true, true},
	{"Tags.UpdateAtScope", fmAzureNSG, true, false},
	{"AuthorizeSecurityGroupIngress", fmAWS, false, false},
	{"RevokeSecurityGroupIngress", fmAWS, false, false},
	{"CreateSecurityGroup", fmAWS, false, false},
	{"DeleteSecurityGroup", fmAWS, false, false},
	{"ModifyNetworkInterfaceAttribute", fmAWS, false, false},
	{"CreateTags", fmAWS, false, false},
	{"DeleteTags", fmAWS, false, false},
}

// --- the diagnostics the provider returned

// fmDiagnostics keeps the errors the provider returned from applies.
type fmDiagnostics struct {
	mu   sync.Mutex
	errs []*tfprotov6.Diagnostic
}

func (d *fmDiagnostics) take() []*tfprotov6.Diagnostic {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.errs
	d.errs = nil
	return out
}

// fmServer records the errors of every apply of the provider it wraps.
type fmServer struct {
	tfprotov6.ProviderServer
	diags *fmDiagnostics
}

func (s fmServer) ApplyResourceChange(ctx context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	resp, err := s.ProviderServer.ApplyResourceChange(ctx, req)
	if resp != nil {
		s.diags.mu.Lock()
		for _, d := range resp.Diagnostics {
			if d.Severity == tfprotov6.DiagnosticSeverityError {
				s.diags.errs = append(s.diags.errs, d)
			}
		}
		s.diags.mu.Unlock()
	}
	return resp, err
}

func fmFactories(clock jit.Clock, diags *fmDiagnostics) map[string]func() (tfprotov6.ProviderServer, error) {
	return map[string]func() (tfprotov6.ProviderServer, error){
		"jit": func() (tfprotov6.ProviderServer, error) {
			s, err := providerserver.NewProtocol6WithError(newWithClock("test", clock)())()
			return fmServer{ProviderServer: s, diags: diags}, err
		},
	}
}

// sdkDump matches what an SDK's error carries beyond what an operator
// needs: azcore's multi-line dump of the response, smithy's operation
// preamble, raw URLs and Go type names.
var sdkDump = regexp.MustCompile(`RESPONSE \d|ERROR CODE:|-{20}|operation error|https response error|RequestID:|https?://|\*[a-z]+\.[A-Z]\w+`)

// checkClearErrors checks that an apply that failed said so clearly: a
// short summary with nothing of an SDK's error in it, and a detail naming
// the cause without an SDK's dump.
func checkClearErrors(errs []*tfprotov6.Diagnostic, want *regexp.Regexp) error {
	if len(errs) == 0 {
		return fmt.Errorf("the apply failed without an error diagnostic from the provider")
	}
	named := false
	for _, d := range errs {
		if len(d.Summary) > 80 || strings.ContainsAny(d.Summary, "\n:") || sdkDump.MatchString(d.Summary) {
			return fmt.Errorf("unclear error summary %q", d.Summary)
		}
		if sdkDump.MatchString(d.Detail) {
			return fmt.Errorf("error %q carries an SDK's dump: %s", d.Summary, d.Detail)
		}
		named = named || want.MatchString(d.Detail)
	}
	if !named {
		return fmt.Errorf("no error names the cause (%s): %v", want, errs)
	}
	return nil
}

// --- the checks after each phase

// fmConverged checks what a phase must leave: the policy's and the
// request's rules each once, nothing the state does not know of and
// nothing it knows missing, the foreign writer's objects untouched, and
// after the last phase the world as before.
func fmConverged(t *testing.T, c *testCloud, f *fmFlow, phase int, foreign string, before any) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		if err := f.expect(t, c, phase); err != nil {
			return err
		}
		if got, want := f.objects(t, c), f.stateObjects(s); !slices.Equal(got, want) {
			return fmt.Errorf("after %s the cloud holds JIT objects\n%q\nthe state records\n%q", fmPhases[phase], got, want)
		}
		if got := f.foreign(t, c); got != foreign {
			return fmt.Errorf("after %s, objects of others changed:\n%s", fmPhases[phase], lineDiff(foreign, got))
		}
		if phase == len(fmPhases)-1 {
			return f.restored(t, c, before)
		}
		return nil
	}
}

// lineDiff shows the lines only before ("-") or only after ("+").
func lineDiff(before, after string) string {
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	var out []string
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// fmCalls are the calls of each operation each phase of a flow makes
// without faults.
type fmCalls [4]map[string]int

// fmCalibrate runs a flow without faults, checking it converges, and
// counts the calls each phase makes.
func fmCalibrate(t *testing.T, f *fmFlow) fmCalls {
	var calls fmCalls
	c := newTestCloud(t, f.fixture)
	f.seed(t, c)
	foreign, before := f.foreign(t, c), f.snapshot(t, c)
	diags := &fmDiagnostics{}
	var steps []resource.TestStep
	for phase := range fmPhases {
		steps = append(steps, resource.TestStep{
			PreConfig: c.ResetCalls,
			Config:    f.config(c, phase, ""),
			Check: resource.ComposeTestCheckFunc(fmConverged(t, c, f, phase, foreign, before), func(*terraform.State) error {
				calls[phase] = c.Calls()
				return nil
			}),
		})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: fmFactories(clocktest.New(requestEpoch), diags), Steps: steps})
	return calls
}

// fmCell runs one cell: each phase with the fault injected into every
// call of op, and, when the apply failed, the phase again without it.
func fmCell(t *testing.T, f *fmFlow, op string, fault fmFault, calibrated fmCalls) {
	c := newTestCloud(t, f.fixture)
	f.seed(t, c)
	foreign, before := f.foreign(t, c), f.snapshot(t, c)
	diags := &fmDiagnostics{}
	timeouts := ""
	if fault.fault.Latency > 0 {
		timeouts = fmTimeouts
	}
	var want *regexp.Regexp
	if fault.want != "" {
		want = regexp.MustCompile(fault.want)
	}
	var steps []resource.TestStep
	written := 0
	for phase := range fmPhases {
		config := f.config(c, phase, timeouts)
		made := calibrated[phase][op]
		written += made
		converged := fmConverged(t, c, f, phase, foreign, before)
		faulted := resource.TestStep{
			PreConfig: func() {
				c.ClearFaults()
				c.ResetCalls()
				c.InjectFault(fault.fault)
			},
			Config: config,
		}
		if fault.outcome == fmFails && made > 0 {
			faulted.ExpectError = want
			steps = append(steps, faulted, resource.TestStep{
				PreConfig: func() {
					// The write the apply gave up on lands meanwhile.
					if err := c.WaitIdle(t.Context()); err != nil {
						t.Error(err)
					}
					errs := diags.take()
					if err := checkClearErrors(errs, want); err != nil {
						t.Errorf("%s: %v", fmPhases[phase], err)
					}
					for _, d := range errs {
						t.Logf("%s failed as it should: %s: %s", fmPhases[phase], d.Summary, d.Detail)
					}
					c.ClearFaults()
				},
				Config: config,
				Check:  converged,
			})
			continue
		}
		faulted.Check = resource.ComposeTestCheckFunc(converged, func(*terraform.State) error {
			if errs := diags.take(); len(errs) > 0 {
				return fmt.Errorf("after %s: errors %v", fmPhases[phase], errs)
			}
			// The fault met the write: what it had to refuse, drop or fail is spent.
			if left, _ := c.InjectedFault(op); made > 0 && left.FailNext+left.DropAfterWrite+left.FailOperationNext > 0 {
				return fmt.Errorf("after %s: %s was called %d times (%d without the fault), and the fault has %+v left", fmPhases[phase], op, c.Calls()[op], made, left)
			}
			return nil
		})
		steps = append(steps, faulted)
	}
	if written == 0 {
		t.Fatalf("no phase of flow %s writes %s", f.name, op)
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: fmFactories(clocktest.New(requestEpoch), diags), Steps: steps})
}

func TestAccFaultMatrix(t *testing.T) {
	start := time.Now()
	calibrated := map[*fmFlow]fmCalls{}
	for _, row := range fmOperations {
		if _, done := calibrated[row.flow]; !done {
			calibrated[row.flow] = fmCalibrate(t, row.flow)
		}
	}
	cells := 0
	var mu sync.Mutex
	var outcomes []string
	// Cleanups run once every parallel cell is done.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(outcomes)
		t.Logf("fault matrix: %d cells in %s\n%s", cells, time.Since(start).Round(time.Second), strings.Join(outcomes, "\n"))
	})
	for _, row := range fmOperations {
		for _, fault := range fmFaults(row.op, row.arm, row.lro) {
			t.Run(row.op+"/"+fault.name, func(t *testing.T) {
				t.Parallel()
				mu.Lock()
				cells++
				mu.Unlock()
				fmCell(t, row.flow, row.op, fault, calibrated[row.flow])
				if !t.Failed() {
					mu.Lock()
					outcomes = append(outcomes, fmt.Sprintf("%s/%s: %s", row.op, fault.name, fault.outcome))
					mu.Unlock()
				}
			})
		}
	}
}
