package azure

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// isRefusal tells whether ARM refused a write as invalid for what the
// object holds now (HTTP 400: a rule or address limit reached since the
// plan, say). Nothing of a refused write was applied, unlike a timeout, a
// dropped connection or an operation that failed after it started, whose
// effect is unknown and which the next apply converges on instead.
func isRefusal(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusBadRequest
}

// undoLog is what a policy's apply needs to take its writes back: each
// object as read before the apply, and the names it wrote there.
type undoLog struct {
	mu        sync.Mutex
	nsgs      map[string][]jit.NSGRule // by NSG ID: the rules before
	ruleNames map[string]map[string]bool
	firewalls map[string]FirewallChange // by firewall ID: the collections before, nil where none
}

func newUndoLog() *undoLog {
	return &undoLog{nsgs: map[string][]jit.NSGRule{}, ruleNames: map[string]map[string]bool{}, firewalls: map[string]FirewallChange{}}
}

func (u *undoLog) nsgBefore(nsg string, rules []jit.NSGRule) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.nsgs[nsg] = slices.Clone(rules)
	u.ruleNames[nsg] = map[string]bool{}
}

// nsgWrites records the rules a plan is about to write or delete in nsg:
// every attempt's, as a placement after a conflict may choose others.
func (u *undoLog) nsgWrites(nsg string, plan jit.NSGPlan) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range slices.Concat(plan.Add, plan.Remove) {
		u.ruleNames[nsg][r.Name] = true
	}
}

// firewallBefore records the collections a change is about to set, as
// the firewall holds them before.
func (u *undoLog) firewallBefore(id string, have *Firewall, change FirewallChange) {
	back := FirewallChange{Network: map[string]*jit.FirewallNetworkCollection{}, NAT: map[string]*jit.FirewallNATCollection{}}
	for name := range change.Network {
		i := slices.IndexFunc(have.NetworkCollections, func(c jit.FirewallNetworkCollection) bool { return c.Name == name })
		back.Network[name] = nil
		if i >= 0 {
			back.Network[name] = &have.NetworkCollections[i]
		}
	}
	for name := range change.NAT {
		i := slices.IndexFunc(have.NATCollections, func(c jit.FirewallNATCollection) bool { return c.Name == name })
		back.NAT[name] = nil
		if i >= 0 {
			back.NAT[name] = &have.NATCollections[i]
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.firewalls[id] = back
}

// rollBack restores every rule and collection the apply wrote to what it
// was before, reading each object anew under its lock: a rule the apply
// created is deleted, one it changed or deleted is written back as it was.
// Only the apply's own names are touched. It returns the error to report
// beside the refusal: that the apply was rolled back, or why not wholly.
func (b *Backend) rollBack(ctx context.Context, u *undoLog) error {
	targets := slices.Concat(slices.Collect(maps.Keys(u.nsgs)), slices.Collect(maps.Keys(u.firewalls)))
	held := b.client.LockAll(ctx, targets...)
	defer held.ReleaseAll()
	var failed []error
	for nsg, before := range u.nsgs {
		b.client.nsgs.Forget(nsg)
		now, err := b.client.SecurityRules(ctx, nsg)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		var back jit.NSGPlan
		for name := range u.ruleNames[nsg] {
			old, cur := ruleNamed(before, name), ruleNamed(now, name)
			switch {
			case old == nil && cur != nil:
				back.Remove = append(back.Remove, *cur)
			case old != nil && (cur == nil || !cur.Equivalent(*old)):
				back.Add = append(back.Add, *old)
			}
		}
		if len(back.Add)+len(back.Remove) == 0 {
			continue
		}
		tflog.Warn(ctx, "rolling back the policy's writes in an NSG", map[string]any{"nsg": nsg, "rewrite": len(back.Add), "delete": len(back.Remove)})
		if err := b.client.ApplyNSGPlan(ctx, nsg, back); err != nil {
			failed = append(failed, err)
		}
	}
	for fw, back := range u.firewalls {
		b.client.firewalls.Forget(fw)
		tflog.Warn(ctx, "rolling back the policy's writes on an Azure Firewall", map[string]any{"firewall": fw})
		if err := b.client.UpdateFirewall(ctx, fw, back); err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return engine.Fail("Cannot roll back the policy's partial write", errors.Join(failed...))
	}
	return engine.Fail("The policy's writes were rolled back", engine.ErrRolledBack)
}

func ruleNamed(rules []jit.NSGRule, name string) *jit.NSGRule {
	i := slices.IndexFunc(rules, func(r jit.NSGRule) bool { return strings.EqualFold(r.Name, name) })
	if i < 0 {
		return nil
	}
	return &rules[i]
}
