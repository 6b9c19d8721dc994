package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/command"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Grants on EC2 as the policy, the request and revoke-expired judge them:
// by what the groups hold, not by their tags alone. These tests read the
// emulator through EC2 calls of their own, independent of the provider's
// reading code.

const primaryENI = "eni-0a0a0a0a0a0a0a0a1" // testEC2's, device index 0

// ec2TwoPortPolicy locks 22 and 3389 on instance, each openable from
// 203.0.113.0/24 for at most two hours.
func ec2TwoPortPolicy(instance string) string {
	return `resource "jit_policy" "db" {
  name                = "db"
  virtual_machine_ids = ["` + instance + `"]
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
`
}

// ec2TwoPortRequest asks for 3389 for 30 minutes and 22 for an hour.
const ec2TwoPortRequest = `
resource "jit_access_request" "carol" {
  virtual_machine_id = one(jit_policy.db.virtual_machine_ids)
  justification      = "INC-81 two ports"
  port {
    number                        = 3389
    allowed_source_address_prefix = "203.0.113.10/32"
    duration                      = "PT30M"
  }
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.10/32"
    duration                      = "PT1H"
  }
}
`

func forgetResource(address string) string {
	return "\nremoved {\n  from = " + address + "\n  lifecycle { destroy = false }\n}\n"
}

// rawGroupRules lists a group's inbound rules, as DescribeSecurityGroupRules
// reports them, as "tcp 22-22 203.0.113.7/32", sorted; nil when the group
// is gone.
func rawGroupRules(t *testing.T, cloud *testCloud, group string) []string {
	t.Helper()
	client := cloud.ec2Client(t)
	if !rawGroupExists(t, cloud, group) {
		return nil
	}
	out, err := client.DescribeSecurityGroupRules(t.Context(), &ec2.DescribeSecurityGroupRulesInput{
		Filters: []types.Filter{{Name: awssdk.String("group-id"), Values: []string{group}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rules := []string{}
	for _, r := range out.SecurityGroupRules {
		if awssdk.ToBool(r.IsEgress) {
			continue
		}
		rules = append(rules, fmt.Sprintf("%s %d-%d %s", awssdk.ToString(r.IpProtocol), awssdk.ToInt32(r.FromPort), awssdk.ToInt32(r.ToPort),
			awssdk.ToString(r.CidrIpv4)+awssdk.ToString(r.CidrIpv6)))
	}
	slices.Sort(rules)
	return rules
}

func rawGroupExists(t *testing.T, cloud *testCloud, group string) bool {
	t.Helper()
	out, err := cloud.ec2Client(t).DescribeSecurityGroups(t.Context(), &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: awssdk.String("group-id"), Values: []string{group}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.SecurityGroups) == 1
}

func rawGroupTags(t *testing.T, cloud *testCloud, group string) map[string]string {
	t.Helper()
	out, err := cloud.ec2Client(t).DescribeSecurityGroups(t.Context(), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{group}})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, tag := range out.SecurityGroups[0].Tags {
		tags[awssdk.ToString(tag.Key)] = awssdk.ToString(tag.Value)
	}
	return tags
}

// grantGroupIDs lists the IDs of the groups tagged jit-grant.
func grantGroupIDs(t *testing.T, cloud *testCloud) []string {
	t.Helper()
	out, err := cloud.ec2Client(t).DescribeSecurityGroups(t.Context(), &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: awssdk.String("tag-key"), Values: []string{jit.TagGrant}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range out.SecurityGroups {
		ids = append(ids, awssdk.ToString(g.GroupId))
	}
	slices.Sort(ids)
	return ids
}

// outOfBandGroup creates a group the way someone with EC2 rights could,
// with the given tags and inbound rules ("tcp 22 198.51.100.0/24", "-1 -1
// 10.0.0.0/8"), and attaches it to the ENI beside its groups.
func outOfBandGroup(t *testing.T, cloud *testCloud, eni, name string, tags map[string]string, rules ...string) string {
	t.Helper()
	client := cloud.ec2Client(t)
	var tagList []types.Tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		tagList = append(tagList, types.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
	}
	in := &ec2.CreateSecurityGroupInput{GroupName: awssdk.String(name), Description: awssdk.String("made by hand"), VpcId: awssdk.String("vpc-0a1b2c3d4e5f60718")}
	if len(tagList) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: tagList}}
	}
	sg, err := client.CreateSecurityGroup(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	id := awssdk.ToString(sg.GroupId)
	for _, r := range rules {
		authorizeRaw(t, cloud, id, r)
	}
	if _, err := client.ModifyNetworkInterfaceAttribute(t.Context(), &ec2.ModifyNetworkInterfaceAttributeInput{
		NetworkInterfaceId: awssdk.String(eni), Groups: append(cloud.eniGroups(t, eni), id),
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// authorizeRaw adds one inbound rule, "proto from-port to-port cidr" or
// "proto port cidr", to a group out of band.
func authorizeRaw(t *testing.T, cloud *testCloud, group, rule string) {
	t.Helper()
	f := strings.Fields(rule)
	if len(f) == 3 {
		f = []string{f[0], f[1], f[1], f[2]}
	}
	var from, to int32
	if _, err := fmt.Sscan(f[1], &from); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(f[2], &to); err != nil {
		t.Fatal(err)
	}
	perm := types.IpPermission{IpProtocol: awssdk.String(f[0]), FromPort: awssdk.Int32(from), ToPort: awssdk.Int32(to)}
	if strings.Contains(f[3], ":") {
		perm.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: awssdk.String(f[3])}}
	} else {
		perm.IpRanges = []types.IpRange{{CidrIp: awssdk.String(f[3])}}
	}
	if _, err := cloud.ec2Client(t).AuthorizeSecurityGroupIngress(t.Context(), &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: awssdk.String(group), IpPermissions: []types.IpPermission{perm},
	}); err != nil {
		t.Fatal(err)
	}
}

// openGrantAsRequest writes a grant group as a request of bob's would,
// through the backend, and returns its group.
func openGrantAsRequest(t *testing.T, cloud *testCloud, request, source string, end time.Time) string {
	t.Helper()
	b := aws.NewBackend(cloud.awsClient(t))
	m, err := b.Machine(t.Context(), testEC2)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := b.OpenGrant(t.Context(), m, engine.Grant{
		ID: request, Policy: "db", Requestor: "arn:aws:iam::123456789012:user/bob", Justification: "INC-90",
		Ports: []engine.GrantPort{{Port: jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, Source: source, End: end}},
	})
	if err != nil || len(opened.Rules) == 0 {
		t.Fatalf("opening bob's grant: %v %+v", err, opened)
	}
	return opened.Rules[0].TargetID
}

// expectListBefore checks the value an attribute (a list of strings) had
// before the planned change, that is as the refresh read it.
func expectListBefore(address, attribute string, check func([]string) error) plancheck.PlanCheck {
	return planCheckFunc(func(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
		for _, rc := range req.Plan.ResourceChanges {
			if rc.Address != address {
				continue
			}
			before, _ := rc.Change.Before.(map[string]any)
			var got []string
			list, _ := before[attribute].([]any)
			for _, v := range list {
				s, _ := v.(string)
				got = append(got, s)
			}
			if err := check(got); err != nil {
				resp.Error = fmt.Errorf("%s.%s before the change: %w", address, attribute, err)
			}
			return
		}
		resp.Error = fmt.Errorf("no planned change of %s", address)
	})
}

type planCheckFunc func(context.Context, plancheck.CheckPlanRequest, *plancheck.CheckPlanResponse)

func (f planCheckFunc) CheckPlan(ctx context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	f(ctx, req, resp)
}

// policyWarnings plans policy "db" (22 from 203.0.113.0/24 for at most
// PT2H on testEC2) through the engine, as ModifyPlan does for the CLI,
// and returns its warnings: the CLI does not hand them to the test.
func policyWarnings(t *testing.T, cloud *testCloud, clock jit.Clock) []string {
	t.Helper()
	e := engine.New(clock, []engine.Backend{aws.NewBackend(cloud.awsClient(t))})
	p := e.PlanPolicy(t.Context(), engine.PolicySpec{Name: "db", MachineIDs: []string{testEC2}, Ports: []jit.Port{
		{Number: 22, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: jit.Duration(2 * time.Hour)},
	}}, nil)
	var out []string
	for _, f := range p.Findings {
		if f.Severity == jit.SeverityError {
			t.Fatalf("the policy's plan failed: %s: %s", f.Summary, f.Detail)
		}
		out = append(out, f.Summary+": "+f.Detail)
	}
	return out
}

// sweepSummary is what these tests read of revoke-expired's JSON summary.
type sweepSummary struct {
	Revoked []struct {
		Target     string   `json:"target"`
		EndTimeUTC string   `json:"end_time_utc"`
		Ports      []string `json:"ports"`
		Unfit      string   `json:"unfit"`
	} `json:"revoked"`
	Live int `json:"live"`
}

// revokeExpired runs the revoke-expired subcommand against the emulator's
// EC2 at the clock's time and returns its summary.
func revokeExpired(t *testing.T, cloud *testCloud, clock jit.Clock) sweepSummary {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := []string{"-region", "eu-west-1", "-aws-endpoint", cloud.URL}
	if code := command.RevokeExpired(t.Context(), args, &stdout, &stderr, clock); code != command.ExitOK {
		t.Fatalf("revoke-expired exited %d: %s %s", code, stdout.String(), stderr.String())
	}
	var s sweepSummary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("revoke-expired's summary: %v\n%s", err, stdout.String())
	}
	return s
}

// (11.2) A group tagged as a grant is exempt from the policy only when it
// is a grant of the policy that fits it. One that claims to be the
// policy's grant but does not fit (a source outside the allowed prefixes,
// an end beyond the maximum from its start) is detached and deleted by
// the policy's apply, which the plan shows (expired_grants); any other
// group tagged as a grant is an ordinary group, whose rules opening a
// locked port are revoked, backed up and restored on destroy; each with a
// warning naming it. A fitting grant keeps its rule.
func TestAccPolicyAWS_groupTaggedAsAGrantIsHonouredOnlyIfItFits(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	config := cloud.config(ec2Policy(testEC2))
	request := "20261123T090000Z-0badf00d"
	var foreign, outside, tooLong, fitting string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy: func(*terraform.State) error {
			// The ordinary group's rule, revoked by the policy, is back.
			if got := rawGroupRules(t, cloud, foreign); !slices.Equal(got, []string{"tcp 22-22 0.0.0.0/0"}) {
				return fmt.Errorf("the group tagged as a grant holds %q after destroy, want its rule restored", got)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					foreign = outOfBandGroup(t, cloud, primaryENI, "looks-like-a-grant", map[string]string{jit.TagGrant: "granted by hand"}, "tcp 22 0.0.0.0/0")
					claim := func(end time.Time) map[string]string {
						return map[string]string{
							jit.TagGrant:   jit.GrantMarker("db", end, "mallory", "forged").String(),
							jit.TagRequest: request,
						}
					}
					outside = outOfBandGroup(t, cloud, primaryENI, "jit-grant-"+request+"-"+testEC2, claim(requestEpoch.Add(time.Hour)), "tcp 22 198.51.100.0/24")
					tooLong = outOfBandGroup(t, cloud, primaryENI, "jit-grant-"+request+"-other", claim(requestEpoch.Add(5*time.Hour)), "tcp 22 203.0.113.50/32")
					fitting = openGrantAsRequest(t, cloud, "20261123T090000Z-b0b0b0b0", "203.0.113.9/32", requestEpoch.Add(time.Hour))

					warnings := strings.Join(policyWarnings(t, cloud, clock), "\n")
					for _, want := range []string{
						"Security group tagged as a grant is not one of the policy's: Security group " + foreign + " (looks-like-a-grant)",
						"Security group claims to be a grant of the policy but does not fit it: Security group " + outside,
						"Security group claims to be a grant of the policy but does not fit it: Security group " + tooLong,
						"source 198.51.100.0/24 lies outside the prefixes the policy allows",
						"beyond the policy's maximum of PT2H",
					} {
						if !strings.Contains(warnings, want) {
							t.Errorf("the plan's warnings do not say %q:\n%s", want, warnings)
						}
					}
					if strings.Contains(warnings, fitting) {
						t.Errorf("the plan warns about the fitting grant %s:\n%s", fitting, warnings)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.db", plancheck.ResourceActionUpdate),
					expectListBefore("jit_policy.db", "expired_grants", func(got []string) error {
						if want := slices.Sorted(slices.Values([]string{outside, tooLong})); !slices.Equal(got, want) {
							return fmt.Errorf("%q, want the groups that claim the policy and do not fit it, %q", got, want)
						}
						return nil
					}),
					planCheckFunc(func(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
						// The group is made in PreConfig: its ID is read when the check runs.
						for _, rc := range req.Plan.ResourceChanges {
							after, _ := rc.Change.After.(map[string]any)
							if rc.Address != "jit_policy.db" || after == nil {
								continue
							}
							rules, _ := after["revoked_ingress_rules"].([]any)
							for _, r := range rules {
								if r, _ := r.(map[string]any); r["security_group_id"] == foreign && r["action"] == "revoke" && r["rule"] == "TCP 22 from 0.0.0.0/0" {
									return
								}
							}
							resp.Error = fmt.Errorf("the plan does not revoke TCP 22 from 0.0.0.0/0 in %s: %v", foreign, rules)
							return
						}
						resp.Error = fmt.Errorf("no planned change of jit_policy.db")
					}),
				}},
				Check: func(*terraform.State) error {
					if got := rawGroupRules(t, cloud, foreign); len(got) != 0 {
						return fmt.Errorf("the group tagged as a grant without a marker still opens %q", got)
					}
					if backup, _, err := jit.ParseSGBackupTags("db", rawGroupTags(t, cloud, foreign)); err != nil || len(backup) != 1 {
						return fmt.Errorf("the revoked rule is not backed up on the group: %v: %w", backup, err)
					}
					for _, id := range []string{outside, tooLong} {
						if rawGroupExists(t, cloud, id) || slices.Contains(cloud.eniGroups(t, primaryENI), id) {
							return fmt.Errorf("group %s, claiming to be the policy's grant without fitting it, is still there", id)
						}
					}
					if got := rawGroupRules(t, cloud, fitting); !slices.Equal(got, []string{"tcp 22-22 203.0.113.9/32"}) {
						return fmt.Errorf("the fitting grant holds %q", got)
					}
					if !slices.Contains(cloud.eniGroups(t, primaryENI), fitting) {
						return fmt.Errorf("the fitting grant was detached")
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// (11.2) revoke-expired removes, before their end, the groups that cannot
// be any policy's grant: one naming no request the provider made, one
// ending more than P1D after its request's start. A grant that could be a
// policy's stays until its end.
func TestAccRevokeExpiredAWS_removesGrantGroupsNoPolicyCouldHaveMade(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	config := cloud.config(ec2Policy(testEC2))
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					noRequest := outOfBandGroup(t, cloud, primaryENI, "jit-grant-by-hand", map[string]string{
						jit.TagGrant: jit.GrantMarker("db", requestEpoch.Add(time.Hour), "mallory", "no request").String(),
					}, "tcp 22 203.0.113.60/32")
					request := "20261123T090000Z-0badf00d"
					twoDays := outOfBandGroup(t, cloud, primaryENI, "jit-grant-"+request+"-"+testEC2, map[string]string{
						jit.TagGrant:   jit.GrantMarker("db", requestEpoch.Add(48*time.Hour), "mallory", "two days").String(),
						jit.TagRequest: request,
					}, "tcp 22 203.0.113.61/32")
					fitting := openGrantAsRequest(t, cloud, "20261123T090000Z-b0b0b0b0", "203.0.113.9/32", requestEpoch.Add(time.Hour))

					clock.Advance(time.Minute)
					s := revokeExpired(t, cloud, clock)
					var revoked []string
					for _, g := range s.Revoked {
						if g.Unfit == "" {
							t.Errorf("%s revoked without saying why before its end %s", g.Target, g.EndTimeUTC)
						}
						revoked = append(revoked, g.Target)
					}
					slices.Sort(revoked)
					if want := slices.Sorted(slices.Values([]string{noRequest, twoDays})); !slices.Equal(revoked, want) || s.Live != 1 {
						t.Fatalf("revoke-expired revoked %v and counted %d live, want %v revoked and the fitting grant live", revoked, s.Live, want)
					}
					for _, id := range []string{noRequest, twoDays} {
						if rawGroupExists(t, cloud, id) {
							t.Errorf("group %s is still there", id)
						}
					}
					if got := rawGroupRules(t, cloud, fitting); !slices.Equal(got, []string{"tcp 22-22 203.0.113.9/32"}) {
						t.Errorf("the fitting grant holds %q", got)
					}
				},
				Config: config,
			},
		},
	})
}

// (11.1) A grant group widened out of band (a port range, another source,
// all protocols, another port) is repaired by the request: its refresh
// no longer finds the port granted as requested, the plan shows the
// repair (rules unknown), and the apply leaves the group holding exactly
// the grant's rule, the same group, still attached.
func TestAccAccessRequestAWS_widenedGrantGroupIsRepaired(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	// The policy is left in the cloud and out of the configuration: the
	// request alone repairs its group (the policy's own plan would delete
	// a grant of its that no longer fits it).
	requestAlone := cloud.config(strings.Replace(ec2Request, "one(jit_policy.db.virtual_machine_ids)", `"`+testEC2+`"`, 1) + forgetResource("jit_policy.db"))
	var group string
	widen := func(rule string) resource.TestStep {
		return resource.TestStep{
			PreConfig: func() { authorizeRaw(t, cloud, group, rule) },
			Config:    requestAlone,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction("jit_access_request.alice", plancheck.ResourceActionUpdate),
				plancheck.ExpectUnknownValue("jit_access_request.alice", tfjsonpath.New("rules")),
			}},
			Check: func(*terraform.State) error {
				if got := rawGroupRules(t, cloud, group); !slices.Equal(got, []string{"tcp 22-22 203.0.113.7/32"}) {
					return fmt.Errorf("after widening with %q the grant group holds %q", rule, got)
				}
				if ids := grantGroupIDs(t, cloud); !slices.Equal(ids, []string{group}) {
					return fmt.Errorf("grant groups %v, want the same group %s repaired", ids, group)
				}
				if !slices.Contains(cloud.eniGroups(t, primaryENI), group) {
					return fmt.Errorf("the grant group was detached")
				}
				return nil
			},
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{
				Config: cloud.config(ec2Policy(testEC2) + ec2Request),
				Check: func(*terraform.State) error {
					ids := grantGroupIDs(t, cloud)
					if len(ids) != 1 {
						return fmt.Errorf("grant groups %v", ids)
					}
					group = ids[0]
					return nil
				},
			},
			{
				// The policy leaves the configuration; the request's plan
				// is empty.
				Config: requestAlone,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_access_request.alice", plancheck.ResourceActionNoop),
				}},
			},
			widen("tcp 20 25 203.0.113.7/32"),
			widen("tcp 22 198.51.100.0/24"),
			widen("-1 -1 -1 203.0.113.7/32"),
			widen("tcp 8080 0.0.0.0/0"),
			{Config: requestAlone, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// (11.14) Each port of a request ends at its own time on EC2: the group
// records each port's end and, in its marker, the last; revoke-expired
// revokes the ports that ended from the group, and deletes the group once
// every port ended.
func TestAccRevokeExpiredAWS_eachPortEndsAtItsOwnTime(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	before := cloud.eniGroups(t, primaryENI)
	forgotten := cloud.config(ec2TwoPortPolicy(testEC2) + forgetResource("jit_access_request.carol"))
	var group string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{
				Config: cloud.config(ec2TwoPortPolicy(testEC2) + ec2TwoPortRequest),
				Check: func(*terraform.State) error {
					ids := grantGroupIDs(t, cloud)
					if len(ids) != 1 {
						return fmt.Errorf("grant groups %v", ids)
					}
					group = ids[0]
					tags := rawGroupTags(t, cloud, group)
					m, ok := jit.ParseMarker(tags[jit.TagGrant])
					if !ok || !m.End.Equal(requestEpoch.Add(time.Hour)) {
						return fmt.Errorf("the marker %q does not carry the last port's end", tags[jit.TagGrant])
					}
					if tags["jit-end-3389-tcp"] != "2026-11-23T09:30:00Z" || tags["jit-end-22-tcp"] != "2026-11-23T10:00:00Z" {
						return fmt.Errorf("the ports' ends are not recorded: %v", tags)
					}
					return nil
				},
			},
			{
				// The request leaves the configuration: only
				// revoke-expired ends its ports from here.
				Config: forgotten,
			},
			{
				PreConfig: func() {
					clock.Advance(45 * time.Minute)
					s := revokeExpired(t, cloud, clock)
					if len(s.Revoked) != 1 || s.Revoked[0].Target != group || !slices.Equal(s.Revoked[0].Ports, []string{"3389/TCP"}) || s.Live != 1 {
						t.Fatalf("revoke-expired at 45 minutes revoked %+v (live %d), want port 3389 of %s alone", s.Revoked, s.Live, group)
					}
					if got := rawGroupRules(t, cloud, group); !slices.Equal(got, []string{"tcp 22-22 203.0.113.10/32"}) {
						t.Fatalf("after the first end the group holds %q, want port 22 alone", got)
					}
					if !slices.Contains(cloud.eniGroups(t, primaryENI), group) {
						t.Fatal("the group was detached while port 22 is open")
					}
					clock.Advance(25 * time.Minute)
					s = revokeExpired(t, cloud, clock)
					if len(s.Revoked) != 1 || s.Revoked[0].Target != group || len(s.Revoked[0].Ports) != 0 {
						t.Fatalf("revoke-expired after the last end revoked %+v, want the group", s.Revoked)
					}
					if rawGroupExists(t, cloud, group) || !slices.Equal(cloud.eniGroups(t, primaryENI), before) {
						t.Fatalf("the group is still there, or the ENI holds %v", cloud.eniGroups(t, primaryENI))
					}
				},
				Config: forgotten,
			},
		},
	})
}

// (11.14) The policy's sweep covers EC2 grant groups as it covers Azure
// rules: a refresh reports the grants of the policy that ended
// (expired_grants: the rules of a port that ended first, then the group),
// and the policy's apply removes them.
func TestAccPolicyAWS_sweepRemovesEndedGrantGroups(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	before := cloud.eniGroups(t, primaryENI)
	forgotten := cloud.config(ec2TwoPortPolicy(testEC2) + forgetResource("jit_access_request.carol"))
	var group string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{
				Config: cloud.config(ec2TwoPortPolicy(testEC2) + ec2TwoPortRequest),
				Check: func(*terraform.State) error {
					ids := grantGroupIDs(t, cloud)
					if len(ids) != 1 {
						return fmt.Errorf("grant groups %v", ids)
					}
					group = ids[0]
					return nil
				},
			},
			{
				Config:            forgotten,
				ConfigStateChecks: []statecheck.StateCheck{statecheck.ExpectKnownValue("jit_policy.db", tfjsonpath.New("expired_grants"), knownvalue.ListSizeExact(0))},
			},
			{
				PreConfig: func() { clock.Advance(45 * time.Minute) },
				Config:    forgotten,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.db", plancheck.ResourceActionUpdate),
					expectListBefore("jit_policy.db", "expired_grants", func(got []string) error {
						if len(got) != 1 || !strings.HasPrefix(got[0], group+"/securityGroupRules/sgr-") {
							return fmt.Errorf("%q, want the rule of port 3389 in %s", got, group)
						}
						return nil
					}),
				}},
				Check: func(*terraform.State) error {
					if got := rawGroupRules(t, cloud, group); !slices.Equal(got, []string{"tcp 22-22 203.0.113.10/32"}) {
						return fmt.Errorf("after the first end the group holds %q, want port 22 alone", got)
					}
					if !slices.Contains(cloud.eniGroups(t, primaryENI), group) {
						return fmt.Errorf("the group was detached while port 22 is open")
					}
					return nil
				},
			},
			{
				PreConfig: func() { clock.Advance(25 * time.Minute) },
				Config:    forgotten,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.db", plancheck.ResourceActionUpdate),
					expectListBefore("jit_policy.db", "expired_grants", func(got []string) error {
						if !slices.Equal(got, []string{group}) {
							return fmt.Errorf("%q, want the group %s", got, group)
						}
						return nil
					}),
				}},
				Check: func(*terraform.State) error {
					if rawGroupExists(t, cloud, group) || !slices.Equal(cloud.eniGroups(t, primaryENI), before) {
						return fmt.Errorf("the ended grant group is still there, or the ENI holds %v", cloud.eniGroups(t, primaryENI))
					}
					return nil
				},
			},
			{Config: forgotten, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// When one port of a multi-port request ends first, the request's plan
// revokes its rule from the group, and the next refresh reports only the
// port the group still opens: the plan after the apply is empty.
func TestAccAccessRequestAWS_portsEndingApartLeaveAnEmptyPlan(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	config := cloud.config(ec2TwoPortPolicy(testEC2) + ec2TwoPortRequest)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: config, ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("jit_access_request.carol", tfjsonpath.New("rules"), knownvalue.ListSizeExact(2)),
			}},
			{
				PreConfig: func() { clock.Advance(45 * time.Minute) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_access_request.carol", plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.carol", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Expired")),
					statecheck.ExpectKnownValue("jit_access_request.carol", tfjsonpath.New("rules"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectPartial(map[string]knownvalue.Check{"port": knownvalue.Int64Exact(22)}),
					})),
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// (11.14) Renewing an ephemeral grant on EC2 moves each port's end, each
// capped by its own port's maximum from the first Open, and the marker's
// to the last of them: revoke-expired then closes each port at its own
// end. The provider server is driven directly, as Terraform would, since
// when the CLI renews depends on timing.
func TestAccessEphemeralAWS_renewMovesEachPortsEnd(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	e := engine.New(jit.NewClock(), []engine.Backend{aws.NewBackend(cloud.awsClient(t))})
	if _, findings := e.ApplyPolicy(t.Context(), engine.PolicySpec{Name: "renew", MachineIDs: []string{testEC2}, Ports: []jit.Port{
		{Number: 22, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: jit.Duration(2 * time.Hour)},
		{Number: 3389, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: jit.Duration(time.Hour)},
	}}, nil, engine.Expect{}); jit.HasError(findings) {
		t.Fatal(findings)
	}
	c := newProtocolClient(t, cloud, clock)
	config := ephemeralConfig(testEC2, "PT30M", "203.0.113.7/32")
	config["port"] = []any{
		map[string]any{"number": 22, "allowed_source_address_prefix": "203.0.113.7/32"},
		map[string]any{"number": 3389, "allowed_source_address_prefix": "203.0.113.7/32"},
	}
	private, _ := c.open(config)
	ids := grantGroupIDs(t, cloud)
	if len(ids) != 1 {
		t.Fatalf("grant groups %v", ids)
	}
	group := ids[0]
	ends := func(marker, port22, port3389 time.Duration) {
		t.Helper()
		tags := rawGroupTags(t, cloud, group)
		m, ok := jit.ParseMarker(tags[jit.TagGrant])
		at := func(d time.Duration) string { return requestEpoch.Add(d).Format(time.RFC3339) }
		if !ok || !m.End.Equal(requestEpoch.Add(marker)) || tags["jit-end-22-tcp"] != at(port22) || tags["jit-end-3389-tcp"] != at(port3389) {
			t.Fatalf("the group records marker %q, 22 ending %q and 3389 ending %q; want %s, %s and %s",
				tags[jit.TagGrant], tags["jit-end-22-tcp"], tags["jit-end-3389-tcp"], at(marker), at(port22), at(port3389))
		}
	}
	ends(30*time.Minute, 30*time.Minute, 30*time.Minute)

	// At 50 minutes each port is renewed by 30 minutes, 3389 only up to
	// its maximum, an hour from the first Open.
	clock.Set(requestEpoch.Add(50 * time.Minute))
	private, _, diags := c.renew(private)
	c.failOn(diags)
	ends(80*time.Minute, 80*time.Minute, 60*time.Minute)

	// Past 3389's end, revoke-expired closes it alone.
	clock.Set(requestEpoch.Add(65 * time.Minute))
	s := revokeExpired(t, cloud, clock)
	if len(s.Revoked) != 1 || !slices.Equal(s.Revoked[0].Ports, []string{"3389/TCP"}) {
		t.Fatalf("revoke-expired at 65 minutes revoked %+v, want port 3389 alone", s.Revoked)
	}
	if got := rawGroupRules(t, cloud, group); !slices.Equal(got, []string{"tcp 22-22 203.0.113.7/32"}) {
		t.Fatalf("the renewed grant holds %q, want port 22 alone", got)
	}

	c.close(private)
	if rawGroupExists(t, cloud, group) {
		t.Fatal("the grant group outlived Close")
	}
}
