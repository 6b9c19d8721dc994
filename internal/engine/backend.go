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
	// Requestor names the identity the backend's credentials belong to.
	Requestor(ctx context.Context) (string, error)
	// SetMachineTags sets tags on a machine and removes the others that
	// remove selects, keeping every other tag.
	SetMachineTags(ctx context.Context, m *jit.Machine, set map[string]string, remove func(name string) bool) error
	// TaggedMachines lists the IDs of the machines carrying tag=value in
	// the configured scope.
	TaggedMachines(ctx context.Context, tag, value string) ([]string, error)

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
	// Rules and Revoked are what the policy will hold once written.
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

// Grant is what the cloud records of a request: the request, its policy
// and each port's source and end.
type Grant struct {
	ID            string
	Policy        string
	Requestor     string
	Justification string
	Ports         []GrantPort
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
	// Requestor is who the request is for: only a newer grant of theirs
	// supersedes it.
	Requestor string
	Ports     []jit.PortProtocol
	// Targets are where the state last saw the request's rules.
	Targets []string
}

// ObservedGrant is a request's grant as the cloud shows it.
type ObservedGrant struct {
	Rules []GrantRule
	// Superseded ports lost their grants to a newer request of the same
	// requester.
	Superseded map[jit.PortProtocol]bool
}

// Scope is what a scan for grants covered.
type Scope struct {
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
}

// Kinds of found grant.
const (
	KindNSGRule       = "nsg-rule"
	KindFirewallGrant = "firewall-grant"
	KindSecurityGroup = "security-group"
)
