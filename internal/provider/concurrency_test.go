package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Concurrency through the CLI: others writing rules into the same NSGs
// and security groups while an apply runs, fifty requesters on one NSG in
// one apply, and two configurations (two states, two provider processes)
// requesting on one NSG at once.

// foreignWriter is another tool writing rules into the NSGs and the
// security group of a test while the provider applies: it adds rules at
// random priorities of the band where JIT rules go and removes some it
// added, through its own clients (another process), and keeps the ledger
// of what it left.
type foreignWriter struct {
	t     *testing.T
	cloud *testCloud
	az    *azure.Client
	ec2   *ec2.Client
	rnd   *rand.Rand
	nsgs  []string
	group string

	mu sync.Mutex
	// left is what the writer left: NSG rules by NSG and name, EC2 rules
	// by ID.
	left    map[string]map[string]jit.NSGRule
	leftSG  map[string]cloudsim.AWSRule
	n       int
	refused int // writes that lost their priority to another writer
	removed int
	stolen  int // priorities taken right before a JIT write of them

	stop chan struct{}
	done chan struct{}
}

func newForeignWriter(t *testing.T, cloud *testCloud, seed uint64, group string, nsgs ...string) *foreignWriter {
	w := &foreignWriter{
		t: t, cloud: cloud, az: cloud.azureClient(t), ec2: cloud.ec2Client(t),
		rnd: rand.New(rand.NewPCG(seed, seed)), nsgs: nsgs, group: group,
		left: map[string]map[string]jit.NSGRule{}, leftSG: map[string]cloudsim.AWSRule{},
	}
	for _, nsg := range nsgs {
		w.left[nsg] = map[string]jit.NSGRule{}
	}
	t.Logf("foreign writer seeded with %d", seed)
	return w
}

// foreignRule is the writer's n-th rule: an Allow of a port no policy locks.
func foreignRule(n, priority int) jit.NSGRule {
	return jit.NSGRule{
		Name: fmt.Sprintf("foreign-%03d", n), Priority: priority, Direction: jit.NSGInbound, Access: jit.NSGAllow, Protocol: jit.NSGProtocolTCP,
		SourcePrefixes: []string{"10.0.9.0/24"}, SourcePortRanges: []string{"*"},
		DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{strconv.Itoa(8000 + n)},
		Description: "written by another tool",
	}
}

// putNSG writes a rule of the writer's at priority; a priority taken is
// refused (SecurityRuleConflict) and left.
func (w *foreignWriter) putNSG(nsg string, priority int) {
	w.mu.Lock()
	w.n++
	rule := foreignRule(w.n, priority)
	w.mu.Unlock()
	err := w.az.ApplyNSGPlan(context.Background(), testNSG+nsg, jit.NSGPlan{Add: []jit.NSGRule{rule}})
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.left[nsg][rule.Name] = rule
	case azure.IsPriorityConflict(err):
		w.refused++
	default:
		w.t.Errorf("foreign writer: %v", err)
	}
}

// step is one write of the writer: a rule added to an NSG or the group,
// or one of its own removed.
func (w *foreignWriter) step() {
	w.mu.Lock()
	i := w.rnd.IntN(len(w.nsgs) + 1)
	remove := w.rnd.IntN(3) == 0
	priority := 950 + w.rnd.IntN(100)
	w.mu.Unlock()
	if i == len(w.nsgs) {
		if w.group != "" {
			w.stepSG(remove)
		}
		return
	}
	nsg := w.nsgs[i]
	w.mu.Lock()
	names := slices.Sorted(maps.Keys(w.left[nsg]))
	w.mu.Unlock()
	if !remove || len(names) == 0 {
		w.putNSG(nsg, priority)
		return
	}
	w.mu.Lock()
	name := names[w.rnd.IntN(len(names))]
	w.mu.Unlock()
	if err := w.az.ApplyNSGPlan(context.Background(), testNSG+nsg, jit.NSGPlan{Remove: []jit.NSGRule{{Name: name}}}); err != nil {
		w.t.Errorf("foreign writer: %v", err)
		return
	}
	w.mu.Lock()
	delete(w.left[nsg], name)
	w.removed++
	w.mu.Unlock()
}

func (w *foreignWriter) stepSG(remove bool) {
	ctx := context.Background()
	w.mu.Lock()
	ids := slices.Sorted(maps.Keys(w.leftSG))
	w.n++
	n := w.n
	w.mu.Unlock()
	if remove && len(ids) > 0 {
		w.mu.Lock()
		id := ids[w.rnd.IntN(len(ids))]
		w.mu.Unlock()
		if _, err := w.ec2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: awssdk.String(w.group), SecurityGroupRuleIds: []string{id}}); err != nil {
			w.t.Errorf("foreign writer: %v", err)
			return
		}
		w.mu.Lock()
		delete(w.leftSG, id)
		w.removed++
		w.mu.Unlock()
		return
	}
	rule := cloudsim.AWSRule{Protocol: "tcp", FromPort: int32(8000 + n), ToPort: int32(8000 + n), CIDRIPv4: fmt.Sprintf("198.51.100.%d/32", n%250+1), Description: fmt.Sprintf("foreign %d", n)}
	out, err := w.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: awssdk.String(w.group), IpPermissions: []ec2types.IpPermission{{
		IpProtocol: awssdk.String(rule.Protocol), FromPort: awssdk.Int32(rule.FromPort), ToPort: awssdk.Int32(rule.ToPort),
		IpRanges: []ec2types.IpRange{{CidrIp: awssdk.String(rule.CIDRIPv4), Description: awssdk.String(rule.Description)}},
	}}})
	if err != nil || len(out.SecurityGroupRules) != 1 {
		w.t.Errorf("foreign writer: %v", err)
		return
	}
	rule.ID = awssdk.ToString(out.SecurityGroupRules[0].SecurityGroupRuleId)
	w.mu.Lock()
	w.leftSG[rule.ID] = rule
	w.mu.Unlock()
}

// start runs the writer until stopped, a write every few milliseconds.
func (w *foreignWriter) start() {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(time.Duration(2+w.rnd.IntN(8)) * time.Millisecond):
				w.step()
			}
		}
	}()
}

func (w *foreignWriter) halt() {
	if w.stop != nil {
		close(w.stop)
		<-w.done
		w.stop = nil
	}
}

// stealPriorities makes the writer take, right before some of the
// provider's rule writes, the very priority the write asks for: the race
// between the provider's read of the NSG and its write, every few writes.
func (w *foreignWriter) stealPriorities(every, most int) {
	var mu sync.Mutex
	seen := 0
	w.cloud.OnCall("SecurityRules.CreateOrUpdate", func(r *http.Request) bool {
		segs := strings.Split(r.URL.Path, "/")
		if len(segs) < 3 || !strings.HasPrefix(segs[len(segs)-1], "jit-") {
			return false
		}
		mu.Lock()
		seen++
		steal := seen%every == 0
		mu.Unlock()
		if !steal {
			return false
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.t.Error(err)
			return true
		}
		var rule struct {
			Properties struct {
				Priority int `json:"priority"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(body, &rule); err != nil {
			w.t.Error(err)
			return true
		}
		w.putNSG(segs[len(segs)-3], rule.Properties.Priority)
		w.mu.Lock()
		w.stolen++
		done := w.stolen >= most
		w.mu.Unlock()
		return done
	})
}

// intact checks that every rule the writer left is in the cloud as it
// wrote it, and nothing else of its is.
func (w *foreignWriter) intact(t *testing.T) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, nsg := range w.nsgs {
		got := map[string]jit.NSGRule{}
		for _, r := range w.cloud.nsgRules(t, nsg) {
			if strings.HasPrefix(r.Name, "foreign-") {
				got[r.Name] = r
			}
		}
		for name, want := range w.left[nsg] {
			if have, ok := got[name]; !ok || !have.Equivalent(want) {
				return fmt.Errorf("%s: the foreign writer's %s is lost or changed: %+v, wrote %+v", nsg, name, have, want)
			}
		}
		if len(got) != len(w.left[nsg]) {
			return fmt.Errorf("%s holds %d rules of the foreign writer, it left %d", nsg, len(got), len(w.left[nsg]))
		}
	}
	if w.group == "" {
		return nil
	}
	got := map[string]cloudsim.AWSRule{}
	for _, g := range w.cloud.Snapshot().AWS.SecurityGroups {
		for _, r := range g.Ingress {
			if g.ID == w.group && strings.HasPrefix(r.Description, "foreign ") {
				got[r.ID] = r
			}
		}
	}
	for id, want := range w.leftSG {
		if have := got[id]; fmJSON(t, have) != fmJSON(t, want) {
			return fmt.Errorf("%s: the foreign writer's rule %s is lost or changed: %s, wrote %s", w.group, id, fmJSON(t, have), fmJSON(t, want))
		}
	}
	if len(got) != len(w.leftSG) {
		return fmt.Errorf("%s holds %d rules of the foreign writer, it left %d", w.group, len(got), len(w.leftSG))
	}
	return nil
}

func (w *foreignWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	left := len(w.leftSG)
	for _, rules := range w.left {
		left += len(rules)
	}
	return fmt.Sprintf("%d writes, %d rules left, %d removed, %d refused for a priority taken, %d priorities taken right before a JIT write", w.n, left, w.removed, w.refused, w.stolen)
}

// requestBlock is a request for port 22 of vm from source, made for person.
func requestBlock(name, vm, source, person, extra string) string {
	return fmt.Sprintf(`
resource "jit_access_request" %q {
  virtual_machine_id = %q
  justification      = "incident bridge"
  on_behalf_of       = %q
  port {
    number                        = 22
    allowed_source_address_prefix = %q
    duration                      = "PT1H"
  }
%s}
`, name, vm, person, source, extra)
}

// grantSources lists the sources of an NSG's JIT grants, failing on a
// priority held twice.
func grantSources(t *testing.T, cloud *testCloud, nsg string) ([]string, error) {
	var sources []string
	seen := map[int]string{}
	for _, r := range cloud.nsgRules(t, nsg) {
		if other, taken := seen[r.Priority]; taken {
			return nil, fmt.Errorf("%s: %s and %s share priority %d", nsg, r.Name, other, r.Priority)
		}
		seen[r.Priority] = r.Name
		if m, ok := jit.ParseMarker(r.Description); ok && m.Kind == jit.MarkerGrant {
			sources = append(sources, strings.Join(r.SourcePrefixes, ","))
		}
	}
	slices.Sort(sources)
	return sources, nil
}

// expectNSGGrantSources checks that an NSG holds exactly one grant from each source.
func expectNSGGrantSources(t *testing.T, cloud *testCloud, nsg string, want []string) error {
	got, err := grantSources(t, cloud, nsg)
	if err != nil {
		return err
	}
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s holds grants from %d sources %v, want one from each of %d %v", nsg, len(got), got, len(want), want)
	}
	return nil
}

// expectAllInitiated checks that no request of the state lost a port: none
// was superseded or failed.
func expectAllInitiated(s *terraform.State, want int) error {
	n := 0
	for addr, r := range s.RootModule().Resources {
		if r.Type != "jit_access_request" {
			continue
		}
		n++
		if got := r.Primary.Attributes["port.0.status"]; got != string(jit.GrantInitiated) {
			return fmt.Errorf("%s: port 22 is %s (%s)", addr, got, r.Primary.Attributes["port.0.status_reason"])
		}
	}
	if n != want {
		return fmt.Errorf("%d requests in state, want %d", n, want)
	}
	return nil
}

// expectStateMatchesCloud checks that the clouds' JIT rules and grant
// groups are exactly those the state records.
func expectStateMatchesCloud(t *testing.T, cloud *testCloud) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		got := fmAzureObjects(t, cloud)
		for _, o := range fmAWSObjects(t, cloud) {
			if !strings.HasSuffix(o, "|backup") && !strings.HasSuffix(o, "|settings") {
				got = append(got, o)
			}
		}
		slices.Sort(got)
		if want := fmStateRules(s, true); !slices.Equal(got, want) {
			return fmt.Errorf("the cloud holds JIT rules\n%q\nthe state records\n%q", got, want)
		}
		return nil
	}
}

// (a) Another tool adds and removes rules in the NSGs and the security
// group of a policy's machines while the policy and six requests are
// applied, at random priorities of the band where JIT rules go, and takes
// the very priority of some of the provider's writes right before they
// land. The apply places around it: no collision surfaces, every rule of
// the policy and the requests is there once, every rule the other tool
// left is there as it wrote it, and the next plan is empty.
func TestAccConcurrency_foreignWritersDuringTheApply(t *testing.T) {
	t.Parallel()
	start := time.Now()
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	const group = "sg-0b5e3a1f2c4d6e8a0" // on every network interface of testEC2
	w := newForeignWriter(t, cloud, uint64(time.Now().UnixNano()), group, "web-nic-nsg", "web-subnet-nsg")
	foreignBefore := fmAzureForeign(t, cloud)
	var config strings.Builder
	config.WriteString(`resource "jit_policy" "p" {
  name                = "busy"
  virtual_machine_ids = ["` + testVM + `web", "` + testEC2 + `"]
  port {
    number                          = 22
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT2H"
  }
  port {
    number                          = 3389
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT2H"
  }
}
`)
	var azureSources []string
	for i := range 4 {
		source := fmt.Sprintf("203.0.113.%d/32", 10+i)
		azureSources = append(azureSources, source)
		config.WriteString(requestBlock(fmt.Sprintf("az%d", i), testVM+"web", source, fmt.Sprintf("person-%d@example.com", i), "  depends_on = [jit_policy.p]\n"))
	}
	for i := range 2 {
		config.WriteString(requestBlock(fmt.Sprintf("ec2%d", i), testEC2, fmt.Sprintf("203.0.113.%d/32", 20+i), fmt.Sprintf("person-%d@example.com", 10+i), "  depends_on = [jit_policy.p]\n"))
	}
	cfg := cloud.config(config.String())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy: func(*terraform.State) error {
			if err := w.intact(t); err != nil {
				return err
			}
			for _, nsg := range w.nsgs {
				if got := fmNSGRules(t, cloud, nsg); len(got) != 0 {
					return fmt.Errorf("%s keeps JIT rules after destroy: %v", nsg, got)
				}
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					w.stealPriorities(3, 6)
					w.start()
				},
				Config: cfg,
				Check: resource.ComposeTestCheckFunc(
					func(*terraform.State) error {
						w.halt()
						t.Logf("foreign writer during the apply: %s", w)
						return w.intact(t)
					},
					func(*terraform.State) error {
						for _, nsg := range w.nsgs {
							denies := 0
							for _, r := range fmNSGRules(t, cloud, nsg) {
								if strings.HasPrefix(r, "deny ") {
									denies++
								}
							}
							if denies != 2 {
								return fmt.Errorf("%s holds %d JIT denies, want 22 and 3389: %v", nsg, denies, fmNSGRules(t, cloud, nsg))
							}
							if err := expectNSGGrantSources(t, cloud, nsg, azureSources); err != nil {
								return err
							}
						}
						if got := cloud.ingress(t, group); slices.ContainsFunc(got, func(r string) bool { return strings.HasPrefix(r, "tcp 22 22 ") }) {
							return fmt.Errorf("%s still opens 22: %v", group, got)
						}
						groups := cloud.grantGroups(t)
						if len(groups) != 2 {
							return fmt.Errorf("grant groups %v, want one per EC2 request", groups)
						}
						primary := cloud.eniGroups(t, "eni-0a0a0a0a0a0a0a0a1")
						for _, g := range groups {
							if id := strings.Fields(g)[0]; !slices.Contains(primary, id) {
								return fmt.Errorf("grant group %s not on the primary interface: %v", id, primary)
							}
						}
						return nil
					},
					func(s *terraform.State) error { return expectAllInitiated(s, 6) },
					expectStateMatchesCloud(t, cloud),
				),
			},
			{
				Config:           cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check: func(*terraform.State) error {
					// The rules the writer left stay as they are; others' are its own.
					foreignNow := fmAzureForeign(t, cloud)
					for _, line := range strings.Split(foreignBefore, "\n") {
						if !strings.Contains(foreignNow, line) {
							return fmt.Errorf("a rule of others present before the apply changed: %s", line)
						}
					}
					return nil
				},
			},
		},
	})
	t.Logf("wall time %s", time.Since(start).Round(time.Millisecond))
}

// fiftyRequests are n requests for port 22, alternately on web and web2,
// each made for another person from its own source: name prefix, and the
// third octet of their sources.
func fiftyRequests(n int, prefix string, octet int) (string, []string, []string) {
	var config strings.Builder
	var all, web []string
	for i := range n {
		vm, source := "web", fmt.Sprintf("198.51.%d.%d/32", octet, i+1)
		if i%2 == 1 {
			vm = "web2"
		} else {
			web = append(web, source)
		}
		all = append(all, source)
		config.WriteString(requestBlock(fmt.Sprintf("%s%02d", prefix, i), testVM+vm, source, fmt.Sprintf("%s-person-%02d@example.com", prefix, i), ""))
	}
	return config.String(), all, web
}

// crowdPolicy locks 22 on web and web2 (behind one subnet NSG, web with
// an NSG of its own too), openable from 198.51.0.0/16.
func crowdPolicy(name string) string {
	return `resource "jit_policy" "p" {
  name                = "` + name + `"
  virtual_machine_ids = ["` + testVM + `web", "` + testVM + `web2"]
  port {
    number                          = 22
    allowed_source_address_prefixes = ["198.51.0.0/16"]
    max_request_access_duration     = "PT2H"
  }
}
`
}

// (b) Fifty people request port 22 in one apply, 25 on each of two VMs
// behind one subnet NSG: the NSG holds fifty grants side by side, each its
// own rule at its own priority, none superseding another. (Fifty on one
// VM would need fifty records of on_behalf_of in its tags, past Azure's
// 50 per resource.) ARM's throttling stays on.
func TestAccConcurrency_fiftyRequestersOnOneNSGInOneApply(t *testing.T) {
	t.Parallel()
	start := time.Now()
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	foreign := fmAzureForeign(t, cloud)
	policy := crowdPolicy("crowd")
	requests, all, web := fiftyRequests(50, "r", 51)
	cfg := cloud.config(policy + requests)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy: func(*terraform.State) error {
			if got := fmAzureForeign(t, cloud); got != foreign {
				return fmt.Errorf("objects of others changed:\n%s", lineDiff(foreign, got))
			}
			return nil
		},
		Steps: []resource.TestStep{
			{Config: cloud.config(policy)},
			{
				PreConfig: cloud.ResetCalls,
				Config:    cfg,
				Check: resource.ComposeTestCheckFunc(
					func(*terraform.State) error {
						if err := expectNSGGrantSources(t, cloud, "web-subnet-nsg", all); err != nil {
							return err
						}
						return expectNSGGrantSources(t, cloud, "web-nic-nsg", web)
					},
					func(s *terraform.State) error { return expectAllInitiated(s, 50) },
					expectStateMatchesCloud(t, cloud),
					func(*terraform.State) error {
						if got := fmAzureForeign(t, cloud); got != foreign {
							return fmt.Errorf("objects of others changed:\n%s", lineDiff(foreign, got))
						}
						calls := cloud.Calls()
						t.Logf("50 requests: %d rule writes for %d grants, %d tag writes", calls["SecurityRules.CreateOrUpdate"], len(all)+len(web), calls["Tags.UpdateAtScope"])
						return nil
					},
				),
			},
			{Config: cfg, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
	t.Logf("wall time %s", time.Since(start).Round(time.Millisecond))
}

// barrier lets n parties wait for each other, or fail after a while.
type barrier struct {
	mu      sync.Mutex
	arrived map[string]int
	n       int
}

func (b *barrier) await(stage string, within time.Duration) error {
	b.mu.Lock()
	b.arrived[stage]++
	b.mu.Unlock()
	deadline := time.Now().Add(within)
	for {
		b.mu.Lock()
		all := b.arrived[stage] >= b.n
		b.mu.Unlock()
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the other run did not reach %q within %s", stage, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// (c) Two configurations, each with a state and a provider process of its
// own, request port 22 25 times each on the same NSGs at the same time,
// against one cloud; the policy is another configuration's. While both
// hold their requests the NSG holds all fifty grants, none lost, none
// twice, no priority shared; each state knows its own; the rules of others
// are as they were; and each destroy removes its own requests only.
func TestAccConcurrency_twoConfigurationsRequestOnOneNSGAtOnce(t *testing.T) {
	start := time.Now()
	cloud := newTestCloud(t, "world")
	cloud.putRule(t, "web-subnet-nsg", inbound("foreign-app", 990, jit.NSGAllow, "8080"))
	foreign := fmAzureForeign(t, cloud)
	// The policy, applied by its own configuration before.
	e := engine.New(jit.NewClock(), []engine.Backend{azure.NewBackend(cloud.azureClient(t), ""), aws.NewBackend(cloud.awsClient(t))})
	spec := engine.PolicySpec{Name: "shared", MachineIDs: []string{testVM + "web", testVM + "web2"}, Ports: []jit.Port{
		{Number: 22, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"198.51.0.0/16"}, MaxRequestAccessDuration: jit.Duration(2 * time.Hour)},
	}}
	if _, findings := e.ApplyPolicy(t.Context(), spec, nil, engine.Expect{}); jit.HasError(findings) {
		t.Fatal(findings)
	}
	// ARM's write throttling stays on, and the subscription's writes are
	// nearly spent, as after a busy while: the runs' writes meet 429s.
	other := cloud.azureClient(t)
	for range 190 {
		if err := other.ApplyNSGPlan(t.Context(), testNSG+"web-subnet-nsg", jit.NSGPlan{Add: []jit.NSGRule{inbound("foreign-app", 990, jit.NSGAllow, "8080")}}); err != nil {
			t.Fatal(err)
		}
	}
	cloud.ResetCalls()
	type run struct {
		name          string
		config        string
		sources, webs []string
	}
	var runs []run
	var allSources, allWeb []string
	for i, name := range []string{"a", "b"} {
		requests, sources, web := fiftyRequests(25, name, 51+i)
		runs = append(runs, run{name, cloud.config(requests), sources, web})
		allSources, allWeb = append(allSources, sources...), append(allWeb, web...)
	}
	b := &barrier{arrived: map[string]int{}, n: len(runs)}
	t.Run("runs", func(t *testing.T) {
		for _, r := range runs {
			t.Run(r.name, func(t *testing.T) {
				t.Parallel()
				resource.Test(t, resource.TestCase{
					ProtoV6ProviderFactories: factoriesAt(clocktest.New(requestEpoch)),
					Steps: []resource.TestStep{
						{
							Config: r.config,
							Check: resource.ComposeTestCheckFunc(
								func(*terraform.State) error { return b.await("applied", 3*time.Minute) },
								func(*terraform.State) error {
									if err := expectNSGGrantSources(t, cloud, "web-subnet-nsg", allSources); err != nil {
										return err
									}
									return expectNSGGrantSources(t, cloud, "web-nic-nsg", allWeb)
								},
								func(s *terraform.State) error { return expectAllInitiated(s, 25) },
								func(s *terraform.State) error {
									// Every rule this state records is in the cloud.
									have := fmAzureObjects(t, cloud)
									for _, o := range fmStateRules(s, true) {
										if !slices.Contains(have, o) {
											return fmt.Errorf("%s of run %s is not in the cloud", o, r.name)
										}
									}
									return nil
								},
								func(*terraform.State) error { return b.await("checked", 3*time.Minute) },
							),
						},
						{Config: r.config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
					},
				})
			})
		}
	})
	for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
		if err := expectNSGGrantSources(t, cloud, nsg, nil); err != nil {
			t.Errorf("after both destroys: %v", err)
		}
		if got := fmNSGRules(t, cloud, nsg); len(got) != 1 || !strings.HasPrefix(got[0], "deny 22->") {
			t.Errorf("after both destroys %s holds %v, want the policy's deny alone", nsg, got)
		}
	}
	if got := fmAzureForeign(t, cloud); got != foreign {
		t.Errorf("objects of others changed:\n%s", lineDiff(foreign, got))
	}
	calls := cloud.Calls()
	t.Logf("two runs of 25 requests: %d rule writes (%d deletes) and %d tag writes for 75 grants and 50 records, throttled writes included",
		calls["SecurityRules.CreateOrUpdate"], calls["SecurityRules.Delete"], calls["Tags.UpdateAtScope"])
	if got := fmAzureRecords(cloud); !slices.Equal(got, slices.Sorted(slices.Values([]string{strings.ToLower(testVM + "web|settings"), strings.ToLower(testVM + "web2|settings")}))) {
		t.Errorf("after both destroys the VMs carry %v, want the policy's settings alone", got)
	}
	t.Logf("wall time %s", time.Since(start).Round(time.Millisecond))
}
