package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

var (
	_ resource.ResourceWithConfigure   = (*policyResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*policyResource)(nil)
	_ resource.ResourceWithImportState = (*policyResource)(nil)
)

func newPolicyResource() resource.Resource { return &policyResource{} }

type policyResource struct {
	clients *clients
}

type policyModel struct {
	ID                types.String   `tfsdk:"id"`
	Name              types.String   `tfsdk:"name"`
	VirtualMachineIDs types.Set      `tfsdk:"virtual_machine_ids"`
	AzureFirewallID   types.String   `tfsdk:"azure_firewall_id"`
	Ports             []policyPort   `tfsdk:"port"`
	Rules             types.List     `tfsdk:"rules"`
	ExpiredGrants     types.List     `tfsdk:"expired_grants"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`

	// RevokedIngressRules is the EC2 side, see policy_aws.go.
	RevokedIngressRules types.List `tfsdk:"revoked_ingress_rules"`
}

type policyPort struct {
	Number                       types.Int64  `tfsdk:"number"`
	Protocol                     types.String `tfsdk:"protocol"`
	AllowedSourceAddressPrefixes types.List   `tfsdk:"allowed_source_address_prefixes"`
	MaxRequestAccessDuration     types.String `tfsdk:"max_request_access_duration"`
}

// policyRule is one rule the policy owns in the cloud, as the plan shows it.
type policyRule struct {
	VirtualMachineID string `tfsdk:"virtual_machine_id"`
	TargetID         string `tfsdk:"target_id"`
	Name             string `tfsdk:"name"`
	Priority         int64  `tfsdk:"priority"`
	Port             int64  `tfsdk:"port"`
	Protocol         string `tfsdk:"protocol"`
}

var policyRuleAttrTypes = map[string]attr.Type{
	"virtual_machine_id": types.StringType,
	"target_id":          types.StringType,
	"name":               types.StringType,
	"priority":           types.Int64Type,
	"port":               types.Int64Type,
	"protocol":           types.StringType,
}

func (r *policyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_policy"
}

func (r *policyResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Locks management ports of Azure VMs behind JIT deny rules: one inbound Deny per port in every " +
			"network security group on each VM's path (its NICs' and their subnets'), scoped to the VM's private IPs. " +
			"Rules that already decide a locked port keep precedence; otherwise the deny takes top precedence, leaving " +
			"priorities before it free for grants. The plan lists every rule in `rules`. The policy's settings are also " +
			"written as tags on each VM, so access requests from other configurations can be validated against them. " +
			"On EC2 instances, the inbound rules of their security groups that open a locked port are revoked instead, and " +
			"restored exactly on destroy: see `revoked_ingress_rules`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "The policy name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "Policy name, unique among your policies; it marks the rules and tags the policy owns. Changing it replaces the policy.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators: []validator.String{
					stringvalidator.LengthBetween(1, 80),
					stringvalidator.RegexMatches(policyNamePattern, "may hold letters, digits, '-', '_' and '.' only"),
				},
			},
			"virtual_machine_ids": schema.SetAttribute{
				Required: true, ElementType: types.StringType,
				MarkdownDescription: "Azure VM resource IDs and EC2 instance IDs to lock. A VM belongs to at most one policy.",
				Validators: []validator.Set{
					setvalidator.SizeAtLeast(1),
					setvalidator.ValueStringsAre(virtualMachineIDValidator{}),
				},
			},
			"azure_firewall_id": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "A classic Azure Firewall (rules in the firewall resource, not a Firewall Policy) in front of the VMs. " +
					"The policy adds a network rule collection there denying the locked ports to the VMs' private IPs, placed " +
					"like the NSG denies: after collections that already decide those ports, with a free priority before it for grants.",
				Validators: []validator.String{stringvalidator.RegexMatches(firewallIDPattern,
					"must be an Azure Firewall resource ID: /subscriptions/…/resourceGroups/…/providers/Microsoft.Network/azureFirewalls/…")},
			},
			"expired_grants": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Grants to the policy's VMs whose end time has passed but whose rules a refresh still found " +
					"(NSG rule or firewall NAT collection IDs). The plan shows them going: applying the policy removes them, " +
					"as do the next plan of the request and `revoke-expired`.",
			},
			"revoked_ingress_rules": revokedIngressRulesAttribute(),
			"rules": schema.ListNestedAttribute{
				Computed: true,
				MarkdownDescription: "Every deny rule the policy owns, sorted by target and priority: what a reviewer reads in the plan. " +
					"Rules written by others into the same NSGs are never altered, renumbered or removed.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"virtual_machine_id": schema.StringAttribute{Computed: true, MarkdownDescription: "The VM the rule locks."},
					"target_id":          schema.StringAttribute{Computed: true, MarkdownDescription: "The network security group, or Azure Firewall, holding the rule."},
					"name":               schema.StringAttribute{Computed: true, MarkdownDescription: "Rule name."},
					"priority":           schema.Int64Attribute{Computed: true, MarkdownDescription: "Rule priority, or on a firewall the priority of the policy's rule collection (lower is evaluated first)."},
					"port":               schema.Int64Attribute{Computed: true, MarkdownDescription: "Locked port."},
					"protocol":           schema.StringAttribute{Computed: true, MarkdownDescription: "Locked protocol."},
				}},
			},
		},
		Blocks: map[string]schema.Block{
			"port": schema.ListNestedBlock{
				MarkdownDescription: "A port to lock. Without any `port` block the policy locks Defender's defaults: " +
					"22, 3389, 5985 and 5986, TCP, from any source, for at most `PT3H`.",
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"number": schema.Int64Attribute{
						Required: true, MarkdownDescription: "Port number, 0–65535, unique per protocol.",
						Validators: []validator.Int64{int64validator.Between(0, 65535)},
					},
					"protocol": schema.StringAttribute{
						Optional: true, Computed: true, Default: stringdefault.StaticString("TCP"),
						MarkdownDescription: "`TCP` (default), `UDP` or `*` (both).",
						Validators:          []validator.String{stringvalidator.OneOf("TCP", "UDP", "*")},
					},
					"allowed_source_address_prefixes": schema.ListAttribute{
						Optional: true, Computed: true, ElementType: types.StringType,
						Default:             listdefault.StaticValue(types.ListValueMust(types.StringType, []attr.Value{types.StringValue("*")})),
						MarkdownDescription: "Sources a request may open the port to: CIDRs, IPs, or `*` for any (default).",
					},
					"max_request_access_duration": schema.StringAttribute{
						Optional: true, Computed: true, Default: stringdefault.StaticString("PT3H"),
						MarkdownDescription: "Longest access a request may get, as an ISO 8601 duration from `PT5M` to `P1D` (default `PT3H`).",
					},
				}},
			},
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Read: true, Update: true, Delete: true}),
		},
	}
}

func (r *policyResource) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if req.ProviderData != nil {
		r.clients = req.ProviderData.(*clients)
	}
}

const defaultPolicyTimeout = 30 * time.Minute

// ModifyPlan validates the policy against the cloud and shows the rules it
// will own, so the plan of a pull request is the review of the change.
func (r *policyResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.clients == nil {
		return // destroy, or a validate without a configured provider
	}
	var plan policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ports, diags := plan.jitPorts()
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() || plan.Name.IsUnknown() || plan.VirtualMachineIDs.IsUnknown() || !setKnown(plan.VirtualMachineIDs) {
		return
	}
	var prior *policyModel
	if !req.State.Raw.IsNull() {
		prior = &policyModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	p, diags := r.plan(ctx, plan.Name.ValueString(), plan.AzureFirewallID.ValueString(), plan.vmIDs(), ports, prior, false)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	rules, diags := p.rulesValue()
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("rules"), rules)...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("expired_grants"), noExpiredGrants)...)
	revoked, diags := p.aws.revokedValue()
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("revoked_ingress_rules"), revoked)...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), plan.Name)...)
}

func (r *policyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, &plan, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *policyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, prior policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.apply(ctx, &plan, &prior, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// apply plans again against what the cloud holds now and writes the
// difference. The planned rules are what the reviewer approved: if the
// cloud moved under them (say a foreign rule took a chosen priority), the
// apply stops before writing anything and the next plan shows the new
// placement.
func (r *policyResource) apply(ctx context.Context, plan, prior *policyModel, diags *diag.Diagnostics) {
	timeout, d := plan.Timeouts.Create(ctx, defaultPolicyTimeout)
	if prior != nil {
		timeout, d = plan.Timeouts.Update(ctx, defaultPolicyTimeout)
	}
	diags.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	ports, d := plan.jitPorts()
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	name := plan.Name.ValueString()
	p, d := r.plan(ctx, name, plan.AzureFirewallID.ValueString(), plan.vmIDs(), ports, prior, true)
	defer p.release()
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	rules, d := p.rulesValue()
	diags.Append(d...)
	if !plan.Rules.IsUnknown() && !plan.Rules.Equal(rules) {
		diags.AddError("Network security groups changed since the plan",
			"The rules this apply would write differ from the planned ones (another writer changed an NSG or the firewall on the path in between). "+
				"Nothing was written; run plan again to see the new placement.")
		return
	}
	revoked, d := p.aws.revokedValue()
	diags.Append(d...)
	if !plan.RevokedIngressRules.IsUnknown() && !plan.RevokedIngressRules.Equal(revoked) {
		diags.AddError("Security groups changed since the plan",
			"The inbound rules this apply would revoke or authorise differ from the planned ones (another writer changed a security group on the path in between). "+
				"Nothing was written; run plan again to see the change.")
		return
	}
	diags.Append(p.write(ctx, r.clients, name)...)
	plan.ID = plan.Name
	plan.Rules = rules
	plan.ExpiredGrants = noExpiredGrants
	plan.RevokedIngressRules = revoked
}

func (r *policyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state policyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := state.Timeouts.Read(ctx, defaultPolicyTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := state.Name.ValueString()
	if name == "" {
		name = state.ID.ValueString() // import
		state.Name = state.ID
	}
	vmIDs := state.vmIDs()
	if state.VirtualMachineIDs.IsNull() {
		found, err := r.clients.policyMachines(ctx, name)
		if err != nil {
			resp.Diagnostics.AddError("Cannot find the policy's virtual machines", err.Error())
			return
		}
		if len(found) == 0 {
			resp.Diagnostics.AddError("Policy not found", fmt.Sprintf("No virtual machine carries the tag %s=%q in the configured subscription or region.", jit.TagPolicy, name))
			return
		}
		vmIDs = found
	}
	observed, d := r.observe(ctx, name, vmIDs, &state)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	if observed.gone {
		resp.Diagnostics.AddWarning("Policy gone", fmt.Sprintf("None of the VMs of policy %q exists any more and none of its rules is left; it is removed from state.", name))
		resp.State.RemoveResource(ctx)
		return
	}
	state.ID = types.StringValue(name)
	state.VirtualMachineIDs, d = types.SetValueFrom(ctx, types.StringType, observed.vmIDs)
	resp.Diagnostics.Append(d...)
	if observed.ports != nil {
		state.Ports = portModels(observed.ports)
	}
	if observed.firewall != "" {
		state.AzureFirewallID = types.StringValue(observed.firewall)
	}
	state.Rules, d = rulesValue(observed.rules)
	resp.Diagnostics.Append(d...)
	slices.Sort(observed.expired)
	state.ExpiredGrants = stringList(observed.expired)
	state.RevokedIngressRules = observed.revoked
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *policyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state policyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := state.Timeouts.Delete(ctx, defaultPolicyTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := state.Name.ValueString()
	// Planning the policy with no machines removes every rule it owns.
	p, d := r.plan(ctx, name, "", nil, nil, &state, true)
	defer p.release()
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(p.write(ctx, r.clients, name)...)
}

func (r *policyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), req.ID)...)
}

// jitPorts converts and validates the port blocks; none means Defender's defaults.
func (m *policyModel) jitPorts() ([]jit.Port, diag.Diagnostics) {
	var diags diag.Diagnostics
	if len(m.Ports) == 0 {
		return jit.DefaultPorts(), nil
	}
	ports := make([]jit.Port, 0, len(m.Ports))
	for i, p := range m.Ports {
		if p.Number.IsUnknown() || p.Protocol.IsUnknown() || p.AllowedSourceAddressPrefixes.IsUnknown() || p.MaxRequestAccessDuration.IsUnknown() {
			return nil, diags // validated again once known
		}
		d, err := jit.ParseDuration(p.MaxRequestAccessDuration.ValueString())
		if err != nil {
			diags.AddAttributeError(path.Root("port").AtListIndex(i).AtName("max_request_access_duration"), "Invalid maximum request duration", err.Error())
			continue
		}
		var prefixes []string
		diags.Append(p.AllowedSourceAddressPrefixes.ElementsAs(context.Background(), &prefixes, false)...)
		ports = append(ports, jit.Port{
			Number: int(p.Number.ValueInt64()), Protocol: jit.Protocol(p.Protocol.ValueString()),
			AllowedSourcePrefixes: prefixes, MaxRequestAccessDuration: d,
		})
	}
	if diags.HasError() {
		return nil, diags
	}
	for _, fe := range jit.ValidatePorts(ports) {
		diags.AddAttributeError(fieldPath(fe.Path), fe.Summary, fe.Detail)
	}
	return ports, diags
}

func (m *policyModel) vmIDs() []string {
	var ids []string
	for _, v := range m.VirtualMachineIDs.Elements() {
		if s, ok := v.(types.String); ok && !s.IsUnknown() && !s.IsNull() {
			ids = append(ids, s.ValueString())
		}
	}
	slices.Sort(ids)
	return ids
}

func portModels(ports []jit.Port) []policyPort {
	out := make([]policyPort, len(ports))
	for i, p := range ports {
		out[i] = policyPort{
			Number:                       types.Int64Value(int64(p.Number)),
			Protocol:                     types.StringValue(string(p.Protocol)),
			AllowedSourceAddressPrefixes: stringList(p.AllowedSourcePrefixes),
			MaxRequestAccessDuration:     types.StringValue(p.MaxRequestAccessDuration.String()),
		}
	}
	return out
}

func rulesValue(rules []policyRule) (types.List, diag.Diagnostics) {
	if rules == nil {
		rules = []policyRule{} // known and empty, as for a policy of EC2 instances only
	}
	slices.SortFunc(rules, func(a, b policyRule) int {
		return cmpOr(strings.Compare(strings.ToLower(a.TargetID), strings.ToLower(b.TargetID)), int(a.Priority-b.Priority), strings.Compare(a.Name, b.Name))
	})
	return types.ListValueFrom(context.Background(), types.ObjectType{AttrTypes: policyRuleAttrTypes}, rules)
}

func cmpOr(vals ...int) int {
	for _, v := range vals {
		if v != 0 {
			return v
		}
	}
	return 0
}

// fieldPath turns a core FieldError path ({"port", 1, "number"}) into a
// framework path.
func fieldPath(steps []any) path.Path {
	var p path.Path
	for i, s := range steps {
		switch v := s.(type) {
		case string:
			if i == 0 {
				p = path.Root(v)
			} else {
				p = p.AtName(v)
			}
		case int:
			p = p.AtListIndex(v)
		}
	}
	return p
}

func setKnown(s types.Set) bool {
	for _, v := range s.Elements() {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}

var (
	policyNamePattern = mustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	firewallIDPattern = mustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/azureFirewalls/[^/]+$`)
)

// policyPlan is the whole change a policy makes, computed from what the
// cloud holds now. ModifyPlan shows it; apply computes it again under the
// NSG locks and writes it.
type policyPlan struct {
	tags     map[string]string      // the policy's settings, for each machine
	machines []*jit.Machine         // machines of the policy that exist
	dropped  []string               // machines that left the policy: untag
	nsgs     map[string]jit.NSGPlan // by NSG ID
	// firewalls are the deny collection plans by firewall ID: the
	// configured firewall, and one the policy used before.
	firewalls map[string]jit.FirewallDenyPlan
	// expiredCollections are expired grants' collections, by firewall ID.
	expiredCollections map[string][]string
	rules              []policyRule   // every rule the policy will own
	aws                *awsPolicyPlan // the EC2 side
	unlock             func()
}

func (p *policyPlan) release() {
	if p == nil {
		return
	}
	if p.unlock != nil {
		p.unlock()
	}
	p.aws.release()
}

// plan resolves every machine's path and plans each NSG on it and the
// firewall, plus every NSG and firewall the prior state had rules in (a
// machine that left the policy, or no longer exists, has its rules removed
// there). With lock, the NSGs and firewalls are locked before they are
// read and stay locked until release.
func (r *policyResource) plan(ctx context.Context, name, firewall string, vmIDs []string, ports []jit.Port, prior *policyModel, lock bool) (*policyPlan, diag.Diagnostics) {
	var diags diag.Diagnostics
	p := &policyPlan{nsgs: map[string]jit.NSGPlan{}, firewalls: map[string]jit.FirewallDenyPlan{}, expiredCollections: map[string][]string{}}
	vmPath := path.Root("virtual_machine_ids")
	if ports != nil {
		tags, err := jit.PolicyTags(name, firewall, ports)
		if err != nil {
			diags.AddAttributeError(path.Root("port"), "Policy settings do not fit in tags", err.Error())
			return p, diags
		}
		p.tags = tags
	}

	locked := portProtocols(ports)
	behind := map[string][]jit.LockedMachine{}
	var azureLocked []jit.LockedMachine // behind the firewall
	nsgIDs := map[string]string{}
	owner := map[string]policyRule{} // deny rule name → VM and port
	var awsMachines []*jit.Machine
	addNSG := func(id string) string {
		key := strings.ToLower(id)
		if _, ok := nsgIDs[key]; !ok {
			nsgIDs[key] = id
		}
		return key
	}
	for _, id := range vmIDs {
		m, err := r.policyMachine(ctx, id)
		switch {
		case isNotFound(err):
			diags.AddAttributeWarning(vmPath, "Virtual machine not found",
				fmt.Sprintf("%s no longer exists; it is left out of policy %q and its rules are removed. Remove it from virtual_machine_ids.", id, name))
			continue
		case err != nil:
			diags.AddAttributeError(vmPath, "Cannot read virtual machine", err.Error())
			continue
		}
		if other, _, ok, _ := jit.PolicyFromTags(m.Tags); ok && other != name {
			diags.AddAttributeError(vmPath, "Virtual machine already in another policy",
				fmt.Sprintf("%s belongs to policy %q (tag %s); a VM belongs to at most one policy. Remove it from that policy first.", id, other, jit.TagPolicy))
			continue
		}
		if class, reason := jit.Classify(m, false); class == jit.Unsupported {
			diags.AddAttributeError(vmPath, "Virtual machine cannot be protected", fmt.Sprintf("%s: %s.", id, reason))
			continue
		}
		p.machines = append(p.machines, m)
		if m.Cloud == jit.CloudAWS {
			awsMachines = append(awsMachines, m)
			continue
		}
		lm := jit.LockedMachine{Key: id, PrivateIPs: m.PrivateIPs(), Ports: locked}
		azureLocked = append(azureLocked, lm)
		for _, nsg := range m.FilterIDs() {
			key := addNSG(nsg)
			behind[key] = append(behind[key], lm)
		}
		for _, port := range locked {
			owner[jit.DenyRuleName(name, id, port)] = policyRule{VirtualMachineID: id, Port: int64(port.Number), Protocol: string(port.Protocol)}
		}
	}
	firewalls := map[string]string{} // by lowercased ID
	if firewall != "" {
		firewalls[strings.ToLower(firewall)] = firewall
	}
	if prior != nil {
		for _, rule := range prior.rules() {
			if isFirewallID(rule.TargetID) {
				firewalls[strings.ToLower(rule.TargetID)] = rule.TargetID
			} else {
				addNSG(rule.TargetID)
			}
		}
		if id := prior.AzureFirewallID.ValueString(); id != "" {
			firewalls[strings.ToLower(id)] = id
		}
		for _, id := range prior.vmIDs() {
			if !slices.Contains(vmIDs, id) {
				p.dropped = append(p.dropped, id)
			}
		}
	}
	if diags.HasError() {
		return p, diags
	}
	var d diag.Diagnostics
	p.aws, d = r.planAWS(ctx, name, awsMachines, locked, prior, lock)
	diags.Append(d...)
	if diags.HasError() {
		return p, diags
	}
	keys := make([]string, 0, len(nsgIDs))
	for k := range nsgIDs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if lock && len(keys)+len(firewalls) > 0 {
		var ids []string
		for _, k := range keys {
			ids = append(ids, nsgIDs[k])
		}
		for _, id := range firewalls {
			ids = append(ids, id)
		}
		az, err := r.clients.azureClient(ids[0])
		if err != nil {
			diags.AddError("Azure is not configured", err.Error())
			return p, diags
		}
		p.unlock = az.Lock(ids...)
	}
	for key, fw := range firewalls {
		machines := azureLocked
		if key != strings.ToLower(firewall) {
			machines = nil // the policy left this firewall: remove its collection
		}
		diags.Append(r.planFirewall(ctx, p, name, fw, machines, owner)...)
		if diags.HasError() {
			return p, diags
		}
	}
	for _, key := range keys {
		nsg := nsgIDs[key]
		az, err := r.clients.azureClient(nsg)
		if err != nil {
			diags.AddError("Azure is not configured", err.Error())
			return p, diags
		}
		current, err := az.SecurityRules(ctx, nsg)
		if isNotFound(err) {
			continue // gone with whatever rules it held
		}
		if err != nil {
			diags.AddError("Cannot read network security group", err.Error())
			return p, diags
		}
		var expired []jit.NSGRule
		current = slices.DeleteFunc(current, func(rule jit.NSGRule) bool {
			if expiredGrant(rule.Description, name, r.clients.clock) {
				expired = append(expired, rule)
				return true
			}
			return false
		})
		np, err := jit.PlanNSG(nsg, current, name, behind[key])
		if err != nil {
			diags.AddAttributeError(vmPath, "No room for the JIT deny rules", err.Error())
			return p, diags
		}
		np.Remove = append(np.Remove, expired...)
		for _, w := range np.Warnings {
			diags.AddAttributeWarning(vmPath, "An existing rule keeps a locked port open", w)
		}
		p.nsgs[nsg] = np
		for _, rule := range append(append([]jit.NSGRule{}, np.Keep...), np.Add...) {
			pr := owner[rule.Name]
			pr.TargetID, pr.Name, pr.Priority = nsg, rule.Name, int64(rule.Priority)
			p.rules = append(p.rules, pr)
		}
	}
	return p, diags
}

// planFirewall plans the policy's deny collection on one firewall; with
// no machines, its removal.
func (r *policyResource) planFirewall(ctx context.Context, p *policyPlan, name, firewall string, machines []jit.LockedMachine, owner map[string]policyRule) diag.Diagnostics {
	var diags diag.Diagnostics
	fwPath := path.Root("azure_firewall_id")
	az, err := r.clients.azureClient(firewall)
	if err != nil {
		diags.AddAttributeError(fwPath, "Azure is not configured", err.Error())
		return diags
	}
	fw, err := az.Firewall(ctx, firewall)
	switch {
	case isNotFound(err) && machines == nil:
		return diags // gone, with the collection
	case isNotFound(err):
		diags.AddAttributeError(fwPath, "Azure Firewall not found", err.Error())
		return diags
	case err != nil:
		diags.AddAttributeError(fwPath, "Cannot read Azure Firewall", err.Error())
		return diags
	case fw.PolicyID != "" && machines != nil:
		diags.AddAttributeError(fwPath, "Azure Firewall is managed by a Firewall Policy",
			fmt.Sprintf("%s takes its rules from Firewall Policy %s; jit_policy writes classic network rule collections only. "+
				"Use a firewall with classic rules, or leave azure_firewall_id unset and rely on the NSG denies.", firewall, fw.PolicyID))
		return diags
	case fw.PolicyID != "":
		return diags // no classic collections to remove
	}
	plan, err := jit.PlanFirewallDeny(firewall, fw.NetworkCollections, name, machines)
	if err != nil {
		diags.AddAttributeError(fwPath, "No room for the JIT deny collection", err.Error())
		return diags
	}
	for _, w := range plan.Warnings {
		diags.AddAttributeWarning(fwPath, "An existing rule keeps a locked port open", w)
	}
	p.firewalls[firewall] = plan
	p.expiredCollections[firewall] = expiredGrantCollections(fw, name, r.clients.clock)
	if plan.Want != nil {
		for _, rule := range plan.Want.Rules {
			pr := owner[rule.Name]
			pr.TargetID, pr.Name, pr.Priority = firewall, rule.Name, int64(plan.Want.Priority)
			p.rules = append(p.rules, pr)
		}
	}
	return diags
}

var noExpiredGrants = types.ListValueMust(types.StringType, []attr.Value{})

// expiredGrant tells whether a rule description marks a grant to one of
// the policy's machines whose end time has passed.
func expiredGrant(description, policy string, clock jit.Clock) bool {
	mk, ok := jit.ParseMarker(description)
	return ok && mk.Kind == jit.MarkerGrant && mk.BelongsTo(policy) && jit.ExpiryStatus(mk.End, clock) == jit.GrantExpired
}

// expiredGrantCollections names the NAT collections on a firewall holding
// only expired grants of the policy; each has a network collection of the
// same name.
func expiredGrantCollections(fw *azure.Firewall, policy string, clock jit.Clock) []string {
	var names []string
	for _, c := range fw.NATCollections {
		if len(c.Rules) > 0 && !slices.ContainsFunc(c.Rules, func(r jit.FirewallNATRule) bool { return !expiredGrant(r.Description, policy, clock) }) {
			names = append(names, c.Name)
		}
	}
	return names
}

func isFirewallID(id string) bool {
	return strings.Contains(strings.ToLower(id), "/providers/microsoft.network/azurefirewalls/")
}

func (p *policyPlan) rulesValue() (types.List, diag.Diagnostics) { return rulesValue(p.rules) }

// write applies the plan: the policy's settings go onto the machines first,
// so a request never finds rules without the policy that explains them;
// then each NSG's rules, NSGs in parallel, one write at a time within each.
func (p *policyPlan) write(ctx context.Context, c *clients, name string) diag.Diagnostics {
	var diags diag.Diagnostics
	for _, m := range p.machines {
		tags := p.tags
		if m.Cloud != jit.CloudAzure && tags[jit.TagFirewall] != "" {
			tags = maps.Clone(tags)
			delete(tags, jit.TagFirewall)
		}
		if err := c.tagMachine(ctx, m, tags); err != nil {
			diags.AddError("Cannot tag virtual machine with the policy", err.Error())
			return diags
		}
	}
	diags.Append(p.aws.write(ctx, c, name)...)
	errs := make(chan error, len(p.nsgs))
	for nsg, np := range p.nsgs {
		if len(np.Add) == 0 && len(np.Remove) == 0 {
			errs <- nil
			continue
		}
		go func() { errs <- c.azure.ApplyNSGPlan(ctx, nsg, np) }()
	}
	for range p.nsgs {
		if err := <-errs; err != nil {
			diags.AddError("Cannot write JIT deny rules", err.Error())
		}
	}
	for fw, fp := range p.firewalls {
		change := azure.FirewallChange{Network: map[string]*jit.FirewallNetworkCollection{}, NAT: map[string]*jit.FirewallNATCollection{}}
		if fp.Changed {
			change.Network[jit.FirewallDenyCollectionName(name)] = fp.Want
		}
		for _, expired := range p.expiredCollections[fw] {
			change.Network[expired], change.NAT[expired] = nil, nil
		}
		if len(change.Network) == 0 {
			continue
		}
		if err := c.azure.UpdateFirewall(ctx, fw, change); err != nil {
			diags.AddError("Cannot write the JIT deny collection", err.Error())
		}
	}
	for _, id := range p.dropped {
		if err := c.untagMachine(ctx, id, name); err != nil && !isNotFound(err) {
			diags.AddError("Cannot remove the policy's tags", err.Error())
		}
	}
	return diags
}

func (m *policyModel) rules() []policyRule {
	var rules []policyRule
	if !m.Rules.IsNull() && !m.Rules.IsUnknown() {
		_ = m.Rules.ElementsAs(context.Background(), &rules, false)
	}
	return rules
}

func portProtocols(ports []jit.Port) []jit.PortProtocol {
	out := make([]jit.PortProtocol, len(ports))
	for i, p := range ports {
		out[i] = p.PortProtocol()
	}
	return out
}

// observedPolicy is a policy as the cloud shows it.
type observedPolicy struct {
	// vmIDs are the machines that exist and carry the policy's settings; a
	// machine whose tags were removed or edited is left out, so the next
	// plan puts it back.
	vmIDs []string
	// ports are the settings found in the tags when they differ from state
	// (or on import); nil when state is right.
	ports []jit.Port
	// firewall is the Azure Firewall the tags name, on import.
	firewall string
	rules    []policyRule
	// expired are the IDs of the policy's grants that expired and remain.
	expired []string
	// revoked is what the policy holds in EC2 security groups.
	revoked types.List
	// gone: no machine of the policy exists and none of its rules is left.
	gone bool
}

func (r *policyResource) observe(ctx context.Context, name string, vmIDs []string, state *policyModel) (*observedPolicy, diag.Diagnostics) {
	var diags diag.Diagnostics
	o := &observedPolicy{}
	importing := state.VirtualMachineIDs.IsNull()
	statePorts, _ := state.jitPorts()
	var machines []*jit.Machine
	var ids []string
	var tagPorts []jit.Port
	firewall := state.AzureFirewallID.ValueString()
	for _, id := range vmIDs {
		m, err := r.policyMachine(ctx, id)
		if isNotFound(err) {
			diags.AddWarning("Virtual machine not found", fmt.Sprintf("%s no longer exists; it is dropped from policy %q and its rules are removed by the next apply.", id, name))
			continue
		}
		if err != nil {
			diags.AddError("Cannot read virtual machine", err.Error())
			return o, diags
		}
		machines, ids = append(machines, m), append(ids, id)
		if policy, ports, ok, _ := jit.PolicyFromTags(m.Tags); ok && policy == name && tagPorts == nil {
			tagPorts = ports
		}
		if importing && m.Cloud == jit.CloudAzure && o.firewall == "" {
			o.firewall = m.Tags[jit.TagFirewall]
		}
	}
	if importing {
		firewall = o.firewall
	}
	ports := statePorts
	if importing && tagPorts != nil && !samePorts(tagPorts, jit.DefaultPorts()) {
		o.ports, ports = tagPorts, tagPorts
	}
	locked := portProtocols(ports)
	owner := map[string]policyRule{}
	nsgIDs := map[string]string{}
	for i, m := range machines {
		policy, mports, ok, _ := jit.PolicyFromTags(m.Tags)
		sameFirewall := m.Cloud != jit.CloudAzure || m.Tags[jit.TagFirewall] == firewall
		if ok && policy == name && samePorts(mports, ports) && sameFirewall {
			o.vmIDs = append(o.vmIDs, ids[i])
		}
		for _, nsg := range azureFilterIDs(m) {
			nsgIDs[strings.ToLower(nsg)] = nsg
		}
		for _, port := range locked {
			owner[jit.DenyRuleName(name, ids[i], port)] = policyRule{VirtualMachineID: ids[i], Port: int64(port.Number), Protocol: string(port.Protocol)}
		}
	}
	firewalls := map[string]string{}
	if firewall != "" {
		firewalls[strings.ToLower(firewall)] = firewall
	}
	for _, rule := range state.rules() {
		if isFirewallID(rule.TargetID) {
			firewalls[strings.ToLower(rule.TargetID)] = rule.TargetID
		} else {
			nsgIDs[strings.ToLower(rule.TargetID)] = rule.TargetID
		}
	}
	for _, fwID := range firewalls {
		az, err := r.clients.azureClient(fwID)
		if err != nil {
			diags.AddError("Azure is not configured", err.Error())
			return o, diags
		}
		fw, err := az.Firewall(ctx, fwID)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			diags.AddError("Cannot read Azure Firewall", err.Error())
			return o, diags
		}
		for _, c := range expiredGrantCollections(fw, name, r.clients.clock) {
			o.expired = append(o.expired, fwID+"/natRuleCollections/"+c)
		}
		for _, c := range fw.NetworkCollections {
			if c.Name != jit.FirewallDenyCollectionName(name) {
				continue
			}
			for _, rule := range c.Rules {
				if mk, ok := jit.ParseMarker(rule.Description); ok && mk.Kind == jit.MarkerDeny && mk.BelongsTo(name) {
					pr := owner[rule.Name]
					pr.TargetID, pr.Name, pr.Priority = fwID, rule.Name, int64(c.Priority)
					o.rules = append(o.rules, pr)
				}
			}
		}
	}
	for _, nsg := range nsgIDs {
		az, err := r.clients.azureClient(nsg)
		if err != nil {
			diags.AddError("Azure is not configured", err.Error())
			return o, diags
		}
		current, err := az.SecurityRules(ctx, nsg)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			diags.AddError("Cannot read network security group", err.Error())
			return o, diags
		}
		for _, rule := range current {
			if expiredGrant(rule.Description, name, r.clients.clock) {
				o.expired = append(o.expired, nsg+"/securityRules/"+rule.Name)
			}
			if mk, ok := jit.ParseMarker(rule.Description); ok && mk.Kind == jit.MarkerDeny && mk.BelongsTo(name) {
				pr := owner[rule.Name]
				pr.TargetID, pr.Name, pr.Priority = nsg, rule.Name, int64(rule.Priority)
				o.rules = append(o.rules, pr)
			}
		}
	}
	var d diag.Diagnostics
	o.revoked, d = r.observeAWS(ctx, name, machines, state)
	diags.Append(d...)
	o.gone = len(machines) == 0 && len(o.rules) == 0 && len(o.revoked.Elements()) == 0
	return o, diags
}

// samePorts compares settings as the tags hold them (sorted by number, then protocol).
func samePorts(a, b []jit.Port) bool {
	sorted := func(ports []jit.Port) []jit.Port {
		out := slices.Clone(ports)
		slices.SortFunc(out, func(x, y jit.Port) int {
			return cmpOr(x.Number-y.Number, strings.Compare(string(x.Protocol), string(y.Protocol)))
		})
		return out
	}
	a, b = sorted(a), sorted(b)
	return slices.EqualFunc(a, b, func(x, y jit.Port) bool {
		return x.Number == y.Number && x.Protocol == y.Protocol && x.MaxRequestAccessDuration == y.MaxRequestAccessDuration &&
			slices.Equal(x.AllowedSourcePrefixes, y.AllowedSourcePrefixes)
	})
}
