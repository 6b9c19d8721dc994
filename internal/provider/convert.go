package provider

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Conversions between the tfsdk models (models.go) and the engine's types.

// portsKnown tells whether every port block is known, so it can be checked.
func (m *policyModel) portsKnown() bool {
	for _, p := range m.Ports {
		if p.Number.IsUnknown() || p.Protocol.IsUnknown() || p.AllowedSourceAddressPrefixes.IsUnknown() || p.MaxRequestAccessDuration.IsUnknown() {
			return false
		}
	}
	return true
}

// jitPorts converts the port blocks, which must be known; none means
// Defender's defaults. The values were validated by the schema.
func (m *policyModel) jitPorts(ctx context.Context) ([]jit.Port, diag.Diagnostics) {
	var diags diag.Diagnostics
	if len(m.Ports) == 0 {
		return jit.DefaultPorts(), nil
	}
	ports := make([]jit.Port, 0, len(m.Ports))
	for _, p := range m.Ports {
		d, err := jit.ParseDuration(p.MaxRequestAccessDuration.ValueString())
		if err != nil {
			continue // reported by the attribute's validator
		}
		var prefixes []string
		diags.Append(p.AllowedSourceAddressPrefixes.ElementsAs(ctx, &prefixes, false)...)
		ports = append(ports, jit.Port{
			Number: int(p.Number.ValueInt64()), Protocol: jit.Protocol(p.Protocol.ValueString()),
			AllowedSourcePrefixes: prefixes, MaxRequestAccessDuration: d,
		})
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

// spec is the policy as configured.
func (m *policyModel) spec(ctx context.Context) (engine.PolicySpec, diag.Diagnostics) {
	ports, diags := m.jitPorts(ctx)
	return engine.PolicySpec{Name: m.Name.ValueString(), MachineIDs: m.vmIDs(), FirewallID: m.AzureFirewallID.ValueString(), Ports: ports}, diags
}

// state is the policy as state records it.
func (m *policyModel) state(ctx context.Context) (*engine.PolicyState, diag.Diagnostics) {
	spec, diags := m.spec(ctx)
	if m.VirtualMachineIDs.IsNull() {
		spec.MachineIDs = nil // an import: found by tags
	}
	if len(m.Ports) == 0 && m.VirtualMachineIDs.IsNull() {
		spec.Ports = nil // an import: read from tags
	}
	s := &engine.PolicyState{PolicySpec: spec}
	var rules []policyRule
	if !m.Rules.IsNull() && !m.Rules.IsUnknown() {
		diags.Append(m.Rules.ElementsAs(ctx, &rules, false)...)
	}
	for _, r := range rules {
		s.Rules = append(s.Rules, engine.OwnedRule{
			MachineIDs: r.VirtualMachineIDs, TargetID: r.TargetID, Name: r.Name, Priority: int(r.Priority.ValueInt64()), // 0 when unknown
			Port: jit.PortProtocol{Number: int(r.Port), Protocol: jit.Protocol(r.Protocol)},
		})
	}
	var revoked []revokedIngressRule
	if !m.RevokedIngressRules.IsNull() && !m.RevokedIngressRules.IsUnknown() {
		diags.Append(m.RevokedIngressRules.ElementsAs(ctx, &revoked, false)...)
	}
	for _, r := range revoked {
		s.Revoked = append(s.Revoked, engine.RevokedRule{
			SecurityGroupID: r.SecurityGroupID, MachineIDs: r.VirtualMachineIDs, Action: r.Action, Rule: r.Rule,
			IPProtocol: r.IPProtocol, FromPort: int(r.FromPort), ToPort: int(r.ToPort), Source: r.Source, Description: r.Description,
		})
	}
	return s, diags
}

// expect is what the plan showed of the rules, for the apply to compare with.
func (m *policyModel) expect(ctx context.Context) (engine.Expect, diag.Diagnostics) {
	planned, diags := m.state(ctx)
	return engine.Expect{
		Rules: planned.Rules, RulesKnown: !m.Rules.IsUnknown(),
		Revoked: planned.Revoked, RevokedKnown: !m.RevokedIngressRules.IsUnknown(),
	}, diags
}

// setComputed writes what the engine found or planned into the model.
func (m *policyModel) setComputed(ctx context.Context, s engine.PolicyState, planning bool) diag.Diagnostics {
	var diags, d diag.Diagnostics
	m.ID = types.StringValue(s.Name)
	rules := make([]policyRule, len(s.Rules))
	for i, r := range s.Rules {
		rules[i] = policyRule{VirtualMachineIDs: r.MachineIDs, TargetID: r.TargetID, Name: r.Name, Priority: types.Int64Value(int64(r.Priority)),
			Port: int64(r.Port.Number), Protocol: string(r.Port.Protocol)}
		if rules[i].VirtualMachineIDs == nil {
			rules[i].VirtualMachineIDs = []string{}
		}
		switch {
		case r.Priority == 0 && planning:
			rules[i].Priority = types.Int64Unknown() // placed when written
		case r.Priority == 0:
			rules[i].Priority = types.Int64Null() // planned, never written
		}
	}
	m.Rules, d = types.ListValueFrom(ctx, policyRulesAttribute.NestedObject.Type(), rules)
	diags.Append(d...)
	revoked := make([]revokedIngressRule, len(s.Revoked))
	for i, r := range s.Revoked {
		revoked[i] = revokedIngressRule{
			SecurityGroupID: r.SecurityGroupID, VirtualMachineIDs: r.MachineIDs, Action: r.Action, Rule: r.Rule,
			IPProtocol: r.IPProtocol, FromPort: int64(r.FromPort), ToPort: int64(r.ToPort), Source: r.Source, Description: r.Description,
		}
		if revoked[i].VirtualMachineIDs == nil {
			revoked[i].VirtualMachineIDs = []string{}
		}
	}
	m.RevokedIngressRules, d = types.ListValueFrom(ctx, revokedIngressRulesAttribute.NestedObject.Type(), revoked)
	diags.Append(d...)
	m.ExpiredGrants = stringList(s.ExpiredGrants)
	return diags
}

// portModels are the port blocks for settings read from the cloud.
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

// jit_access_request and jit_access.

// baseRequest is what both ask for, ports aside: the VM, and who asks and why.
func (m *accessModel) baseRequest() engine.Request {
	return engine.Request{MachineID: m.VirtualMachineID.ValueString(), OnBehalfOf: m.OnBehalfOf.ValueString(), Justification: m.Justification.ValueString()}
}

// record is who asked and why, as the request was made.
func (m *accessModel) record() jit.GrantRecord {
	return jit.GrantRecord{Requestor: m.Requestor.ValueString(), OnBehalfOf: m.OnBehalfOf.ValueString(), Justification: m.Justification.ValueString()}
}

// requestPort is the port as asked, without a duration or end.
func (p *requestedPort) requestPort() engine.RequestPort {
	return engine.RequestPort{Number: int(p.Number.ValueInt64()), Protocol: jit.Protocol(p.Protocol.ValueString()), Source: p.AllowedSourceAddressPrefix.ValueString()}
}

func (p *requestedPort) portProtocol() jit.PortProtocol {
	return jit.PortProtocol{Number: int(p.Number.ValueInt64()), Protocol: jit.Protocol(p.Protocol.ValueString())}
}

// jit_access_request.

func (m *accessRequestModel) portsKnown() bool {
	for _, p := range m.Ports {
		if p.Number.IsUnknown() || p.AllowedSourceAddressPrefix.IsUnknown() || p.Duration.IsUnknown() ||
			(p.Duration.IsNull() && p.EndTimeUTC.IsUnknown()) {
			return false
		}
	}
	return true
}

// request is the request as configured.
func (m *accessRequestModel) request() (engine.Request, diag.Diagnostics) {
	var diags diag.Diagnostics
	r := m.baseRequest()
	for _, p := range m.Ports {
		port := p.requestPort()
		port.Duration = p.Duration.ValueString()
		if p.Duration.IsNull() {
			var d diag.Diagnostics
			port.End, d = p.EndTimeUTC.ValueRFC3339Time()
			diags.Append(d...)
		}
		r.Ports = append(r.Ports, port)
	}
	return r, diags
}

func (m *accessRequestModel) portProtocols() []jit.PortProtocol {
	out := make([]jit.PortProtocol, len(m.Ports))
	for i := range m.Ports {
		out[i] = m.Ports[i].portProtocol()
	}
	return out
}

func (m *accessRequestModel) rules(ctx context.Context) ([]engine.GrantRule, diag.Diagnostics) {
	var rules []grantRule
	var diags diag.Diagnostics
	if !m.Rules.IsNull() && !m.Rules.IsUnknown() {
		diags = m.Rules.ElementsAs(ctx, &rules, false)
	}
	out := make([]engine.GrantRule, len(rules))
	for i, r := range rules {
		out[i] = engine.GrantRule{TargetID: r.TargetID, Name: r.Name, Priority: int(r.Priority), Port: jit.PortProtocol{Number: int(r.Port), Protocol: jit.Protocol(r.Protocol)}}
	}
	return out, diags
}

// grantRef names the request's grant for the engine, with the targets
// the state last saw its rules in.
func (m *accessRequestModel) grantRef(ctx context.Context, ports []jit.PortProtocol) (engine.GrantRef, diag.Diagnostics) {
	rules, diags := m.rules(ctx)
	ref := engine.GrantRef{MachineID: m.VirtualMachineID.ValueString(), RequestID: m.ID.ValueString(), Ports: ports,
		Requestor: m.Requestor.ValueString(), OnBehalfOf: m.OnBehalfOf.ValueString(), Sources: map[jit.PortProtocol]string{}}
	for _, p := range m.Ports {
		ref.Sources[p.portProtocol()] = p.AllowedSourceAddressPrefix.ValueString()
	}
	for _, r := range rules {
		ref.Targets = append(ref.Targets, r.TargetID)
	}
	return ref, diags
}

// grant is what the cloud records of the request, for the ports given.
func (m *accessRequestModel) grant(ports []int) (engine.Grant, diag.Diagnostics) {
	g := engine.Grant{ID: m.ID.ValueString(), Justification: m.Justification.ValueString(), Requestor: m.Requestor.ValueString(), OnBehalfOf: m.OnBehalfOf.ValueString()}
	var diags diag.Diagnostics
	for _, i := range ports {
		p := &m.Ports[i]
		end, d := p.EndTimeUTC.ValueRFC3339Time()
		diags.Append(d...)
		g.Ports = append(g.Ports, engine.GrantPort{Port: p.portProtocol(), Source: p.AllowedSourceAddressPrefix.ValueString(), End: end})
	}
	return g, diags
}

func grantRulesValue(ctx context.Context, rules []engine.GrantRule) (types.List, diag.Diagnostics) {
	rules = slices.Clone(rules)
	engine.SortGrantRules(rules)
	out := make([]grantRule, len(rules))
	for i, r := range rules {
		out[i] = grantRule{TargetID: r.TargetID, Name: r.Name, Priority: int64(r.Priority), Port: int64(r.Port.Number), Protocol: string(r.Port.Protocol)}
	}
	return types.ListValueFrom(ctx, accessRequestRulesAttribute.NestedObject.Type(), out)
}

func rfc3339(t time.Time) timetypes.RFC3339 { return timetypes.NewRFC3339TimeValue(t.UTC()) }

// ephemeral jit_access.

// request is the ephemeral grant as a request: every port for Duration.
func (m *accessEphemeralModel) request() engine.Request {
	r := m.baseRequest()
	r.Duration = m.Duration.ValueString()
	for _, p := range m.Ports {
		r.Ports = append(r.Ports, p.requestPort())
	}
	return r
}

// jit_virtual_machine.

func stringList(ss []string) types.List {
	vals := make([]attr.Value, len(ss))
	for i, s := range ss {
		vals[i] = types.StringValue(s)
	}
	return types.ListValueMust(types.StringType, vals)
}

// orEmpty keeps a list known and empty rather than null.
func orEmpty(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// checkRecord warns when what the cloud records of who asked and why is
// not what the request was made with: someone rewrote the record.
func checkRecord(diags *diag.Diagnostics, request string, made, recorded jit.GrantRecord) {
	for _, f := range []struct{ attr, made, recorded string }{
		{"requestor", made.Requestor, recorded.Requestor},
		{"on_behalf_of", made.OnBehalfOf, recorded.OnBehalfOf},
		{"justification", made.Justification, recorded.Justification},
	} {
		if !jit.RecordedMatches(f.recorded, f.made) {
			diags.AddAttributeWarning(path.Root(f.attr), "The cloud's record of the request was changed",
				fmt.Sprintf("Request %s was made with %s %q, but the cloud now records %q: someone rewrote the record. Audit reports what the cloud records.",
					request, f.attr, f.made, f.recorded))
		}
	}
}

// heldPorts are the request's ports as the engine plans and refreshes them.
func (m *accessRequestModel) heldPorts() ([]engine.HeldPort, diag.Diagnostics) {
	var diags diag.Diagnostics
	out := make([]engine.HeldPort, len(m.Ports))
	for i := range m.Ports {
		p := &m.Ports[i]
		end, d := p.EndTimeUTC.ValueRFC3339Time()
		diags.Append(d...)
		out[i] = engine.HeldPort{Port: p.portProtocol(), End: end, Status: jit.GrantStatus(p.Status.ValueString()), Reason: p.StatusReason.ValueString()}
	}
	return out, diags
}

// setPortStatuses takes each port's status and reason from the engine's.
func (m *accessRequestModel) setPortStatuses(ports []engine.HeldPort) {
	for i, hp := range ports {
		p := &m.Ports[i]
		p.Status, p.StatusReason = types.StringValue(string(hp.Status)), types.StringNull()
		if hp.Reason != "" {
			p.StatusReason = types.StringValue(hp.Reason)
		}
	}
}

// setOpened takes what opening the request wrote: each port's protocol,
// end and where to connect, the request's ID, requestor, start and rules.
func (m *accessRequestModel) setOpened(ctx context.Context, o *engine.OpenedRequest) diag.Diagnostics {
	for i, pp := range o.Resolved {
		p := &m.Ports[i]
		p.Protocol = types.StringValue(string(pp.Protocol))
		p.EndTimeUTC = rfc3339(o.Grant.Ports[i].End)
		p.Status, p.StatusReason = types.StringValue(string(jit.GrantInitiated)), types.StringNull()
		p.ConnectionDetails = types.StringValue(o.Opened.Connect[pp])
	}
	m.ID, m.Requestor = types.StringValue(o.Grant.ID), types.StringValue(o.Grant.Requestor)
	m.StartTimeUTC = rfc3339(o.Start)
	var diags diag.Diagnostics
	m.Rules, diags = grantRulesValue(ctx, o.Opened.Rules)
	return diags
}
