package engine

import (
	"context"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Backend is one cloud as the engine drives it. A backend resolves the
// machines whose IDs it owns and the filters on their paths (NSGs and
// firewalls, security groups), plans and writes a policy's part in them, and
// opens, finds and closes grants. It speaks the core's types; the engine
// never asks which cloud it is talking to, so a new cloud is a new package
// implementing Backend and one line registering it.
type Backend interface {
	// Name is the cloud's name in messages and provider blocks: "azure", "aws".
	Name() string
	// Owns tells whether id (a machine, or a filter such as an NSG, a
	// firewall or a security group) belongs to this cloud.
	Owns(id string) bool

	// Machine resolves a machine and its network path. A machine that does
	// not exist is an error wrapping ErrNotFound.
	Machine(ctx context.Context, id string) (*jit.Machine, error)
	// Unsupported are the reasons, beyond what the core sees, that the
	// cloud cannot protect m (an interface with no filter on its path).
	Unsupported(m *jit.Machine) []string
	// Requestor names the identity the backend's credentials belong to.
	Requestor(ctx context.Context) (string, error)
	// SetMachineTags sets tags on a machine and removes the others that
	// remove selects, keeping every other tag.
	SetMachineTags(ctx context.Context, m *jit.Machine, set map[string]string, remove func(name string) bool) error
	// TaggedMachines lists the IDs of the machines carrying tag=value in
	// the configured scope.
	TaggedMachines(ctx context.Context, tag, value string) ([]string, error)

	// Survey reads every machine of the configured scope, narrowed by
	// scope, with the filters on its path, for the fleet view. It reads in
	// list calls, whose number grows with pages rather than machines, and
	// at most once each filter the lists leave out; never once per machine.
	Survey(ctx context.Context, scope SurveyScope) ([]*MachineView, error)
	// Inspect reads one machine as Survey does; front is a filter in front
	// of it (an Azure Firewall), or "". A machine that does not exist is
	// an error wrapping ErrNotFound.
	Inspect(ctx context.Context, id, front string) (*MachineView, error)

	// PlanPolicy reads the filters on the machines' paths and those the
	// prior state names, and plans the policy's part in them. With
	// in.Lock, the filters are locked before they are read and stay locked
	// until the change is released.
	PlanPolicy(ctx context.Context, in PolicyInput) (*PolicyChange, error)
	// ObservePolicy reads what the policy holds in the filters.
	ObservePolicy(ctx context.Context, in PolicyInput) (*PolicyObservation, error)

	// GrantTargets is how many places one port's grant has rules in.
	GrantTargets(m *jit.Machine) int
	// CheckGrant places the request's grants as the filters are now,
	// without writing, and reports grants that could not work.
	CheckGrant(ctx context.Context, m *jit.Machine, g Grant) []jit.Finding
	// OpenGrant writes the grant (idempotent) and supersedes older grants
	// it replaces. What it wrote is returned even with an error.
	OpenGrant(ctx context.Context, m *jit.Machine, g Grant) (OpenedGrant, error)
	// ObserveGrant finds a request's rules; m is nil when the machine is gone.
	ObserveGrant(ctx context.Context, ref GrantRef) (ObservedGrant, error)
	// CloseGrant removes a request's rules for ref.Ports.
	CloseGrant(ctx context.Context, ref GrantRef) error

	// ScanGrants finds every grant in the configured scope, for
	// revoke-expired. An unreadable scope is an error.
	ScanGrants(ctx context.Context) (Scope, []FoundGrant, error)
	// ScanMachines lists, without writing, every machine in the
	// configured scope and the grants the cloud shows on each, expired
	// ones included, for audit. Grants whose machine is not found come
	// back under a machine with an empty ID. An unreadable part of the
	// scope is an error; what was read is still returned.
	ScanMachines(ctx context.Context) (Scope, []ScannedMachine, error)
	// RevokeGrant removes a found grant if, read again right before the
	// write, still(marker) holds; revoked is false when it was kept.
	RevokeGrant(ctx context.Context, g FoundGrant, still func(jit.Marker) bool) (revoked bool, err error)
}

// MachinePrefetcher is a Backend that reads many machines in fewer calls
// than one each (list calls, batches): a policy's machines are handed to
// it together before they are resolved one by one, which then finds them
// read.
type MachinePrefetcher interface {
	PrefetchMachines(ctx context.Context, ids []string)
}

// PolicyInput is a policy as one backend plans or observes it.
type PolicyInput struct {
	Name string
	// Ports are the policy's settings; nil when the policy is destroyed.
	Ports []jit.Port
	// Machines are this backend's machines of the policy that exist.
	Machines []*jit.Machine
	// Left are this backend's machines the prior state had that are not
	// among Machines: they left the policy or are gone.
	Left []string
	// FirewallID is the configured filter in front of the machines, when
	// this backend owns it.
	FirewallID string
	// Prior is this backend's part of the prior state: the rules and
	// records whose targets it owns; nil on create.
	Prior *PolicyState
	// Lock locks the filters read until the change is released.
	Lock  bool
	Clock jit.Clock
}

// PolicyChange is one backend's part of a policy's plan.
type PolicyChange struct {
	// Rules and Revoked are what the policy will hold once written. A
	// rule's priority may be 0 until Write sets it: the backend places it
	// at the write.
	Rules    []OwnedRule
	Revoked  []RevokedRule
	Findings []jit.Finding
	// Write applies the change; nil when there is nothing to write.
	Write func(context.Context) error
	// Unlock releases the locks taken when planning; nil when none.
	Unlock func()
}

// Release releases the change's locks; safe on nil and more than once.
func (c *PolicyChange) Release() {
	if c != nil && c.Unlock != nil {
		c.Unlock()
		c.Unlock = nil
	}
}

// PolicyObservation is what one backend found of a policy.
type PolicyObservation struct {
	Rules   []OwnedRule
	Revoked []RevokedRule
	// Expired are the IDs of the policy's grants that ended and remain.
	Expired  []string
	Findings []jit.Finding
}

// PolicySpec is a policy as configured.
type PolicySpec struct {
	Name       string
	MachineIDs []string
	// FirewallID is an optional filter in front of every machine (a
	// classic Azure Firewall).
	FirewallID string
	Ports      []jit.Port
}

// PolicyState is a policy as state records it.
type PolicyState struct {
	PolicySpec
	Rules   []OwnedRule
	Revoked []RevokedRule
	// ExpiredGrants are grants to the policy's machines that ended but
	// whose rules remain.
	ExpiredGrants []string
}

// OwnedRule is one rule a policy owns in a filter.
type OwnedRule struct {
	MachineIDs []string
	TargetID   string
	Name       string
	Priority   int
	Port       jit.PortProtocol
}

// RevokedRule is one inbound rule of a security group the policy holds: an
// original rule it keeps revoked, or a remainder it authorised in place of
// the part of a wider rule that opened no locked port.
type RevokedRule struct {
	SecurityGroupID string
	MachineIDs      []string
	Action          string
	Rule            string
	IPProtocol      string
	FromPort        int
	ToPort          int
	Source          string
	Description     string
}

// Actions of RevokedRule.
const (
	ActionRevoke    = "revoke"
	ActionRemainder = "re-authorize remainder"
)

// Grant is what the cloud records of a request: the request, its policy,
// who asked and why, and each port's source and end.
type Grant struct {
	ID            string
	Policy        string
	Requestor     string
	OnBehalfOf    string
	Justification string
	Ports         []GrantPort
	// Again marks a request's grant written again (rules deleted out of
	// band, a renewal): it supersedes nothing. The request superseded what
	// it had to when first opened; a grant made since is newer than it.
	Again bool
}

// Record is who asked for the grant and why, as the cloud keeps it.
func (g Grant) Record() jit.GrantRecord {
	return jit.GrantRecord{Requestor: g.Requestor, OnBehalfOf: g.OnBehalfOf, Justification: g.Justification}
}

// GrantPort is one port of a grant.
type GrantPort struct {
	Port   jit.PortProtocol
	Source string
	End    time.Time
}

// GrantRule is one rule a grant holds in the cloud.
type GrantRule struct {
	TargetID string
	Name     string
	Priority int
	Port     jit.PortProtocol
}

// OpenedGrant is what OpenGrant wrote.
type OpenedGrant struct {
	Rules []GrantRule
	// Connect tells, per port, where to connect.
	Connect map[jit.PortProtocol]string
}

// GrantRef names a request's grant to find or close it.
type GrantRef struct {
	// Machine is nil when the machine is gone.
	Machine   *jit.Machine
	MachineID string
	RequestID string
	Ports     []jit.PortProtocol
	// Sources are the ports' sources as requested, when known: a backend
	// that reads whole rules reports a port's grant only while its rules
	// are exactly what the grant wants, so that one widened out of band
	// (a port range, another source, all protocols) shows as a repair.
	Sources map[jit.PortProtocol]string
	// Targets are where the state last saw the request's rules.
	Targets []string
	// Requestor and OnBehalfOf are who made the request: only their own
	// newer grants supersede it.
	Requestor, OnBehalfOf string
	// Final closes the request for good (destroyed, or its run ended):
	// what the cloud keeps about it beside its rules goes too.
	Final bool
}

// ObservedGrant is a request's grant as the cloud shows it.
type ObservedGrant struct {
	Rules []GrantRule
	// Superseded ports lost their grants to a newer request of the same
	// requester.
	Superseded map[jit.PortProtocol]bool
	// Record is who asked and why as the cloud records the request; nil
	// when it keeps no record (nothing left, or a grant older than
	// records).
	Record *jit.GrantRecord
}

// Scope is what a scan for grants covered.
type Scope struct {
	// ID names the scope in messages, as its cloud does: an ARM scope
	// (/subscriptions/…/resourceGroups/…), a region.
	ID            string `json:"-"`
	Cloud         string `json:"cloud"`
	Subscription  string `json:"subscription,omitempty"`
	ResourceGroup string `json:"resource_group,omitempty"`
	Region        string `json:"region,omitempty"`
}

// FoundGrant is a grant found by a scan: one rule, one pair of firewall
// collections or one security group.
type FoundGrant struct {
	Kind string
	// Target is the NSG or firewall holding the grant, or the grant's
	// security group.
	Target string
	// Name is the rule's, the collections' or the security group's name.
	Name    string
	Request string
	Marker  jit.Marker
	// Vouched is false when something is named or tagged as a grant but
	// not every part carries a grant marker: it is left alone.
	Vouched bool
	// Ports, when set, are the ports of a grant whose ports end apart (an
	// EC2 grant group) that end at Marker.End, before the grant's last:
	// revoking them leaves the grant's other ports open. Empty, the whole
	// grant ends at Marker.End.
	Ports []jit.PortProtocol
	// Unfit, when set, says why the grant cannot be any policy's (it
	// names no request, or ends later after its start than any policy
	// allows): it is removed whatever its end.
	Unfit string
	// Record is who asked and why as the cloud keeps it; RecordWhole
	// tells whether every field is whole (or cut visibly with its hash),
	// and not only the marker's abbreviation. Nil when there is none.
	Record      *jit.GrantRecord
	RecordWhole bool
}

// Requestor is who asked for the grant: the record's requestor, else the
// marker's abbreviation of it.
func (g FoundGrant) Requestor() string {
	if g.Record != nil {
		return g.Record.Requestor
	}
	return g.Marker.Requestor
}

// ScannedMachine is one machine of a scope and the grants on it.
type ScannedMachine struct {
	// Machine carries ID, Name, Location, State and Tags; nil groups
	// grants whose machine was not found.
	Machine *jit.Machine
	Grants  []ScannedGrant
}

// ScannedGrant is one port of one request as one filter holds it: a rule
// of an NSG or of a firewall, or a grant security group's permission.
type ScannedGrant struct {
	Request string
	Port    jit.PortProtocol
	// Source is the prefix the rule allows; RequesterSource tells whether
	// it is the requester's (not an Azure Firewall's own, which NSG rules
	// behind a DNAT allow).
	Source          string
	RequesterSource bool
	Marker          jit.Marker
	// Vouched is false for something named or tagged as a grant whose
	// marker is not a grant's.
	Vouched bool
	// Record is who asked and why as the cloud keeps it, nil when
	// nothing does; RecordWhole as for FoundGrant.
	Record      *jit.GrantRecord
	RecordWhole bool
	// Target holds the grant (an NSG, a firewall, a security group);
	// Name is the rule's or the group's.
	Target, Name string
}

// Kinds of found grant.
const (
	KindNSGRule       = "nsg-rule"
	KindFirewallGrant = "firewall-grant"
	KindSecurityGroup = "security-group"
	// KindGrantRecord is the record of a request (who asked, and why)
	// kept apart from its rules: found by a scan once the request can no
	// longer be open and no rule of it is left.
	KindGrantRecord = "grant-record"
)
