package azure

import (
	"fmt"
	"strings"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// defenderFinding refuses to lock an NSG holding Microsoft Defender for
// Cloud's own JIT rules: Defender rewrites its deny and allow rules at the
// top of the NSG on every request and restores the NSG when a grant ends,
// so it would move or drop the policy's rules, and the policy's denies
// would shadow Defender's grants. nil when the NSG holds none, or when no
// VM of the policy is behind it any more (its denies are being removed).
func defenderFinding(nsg string, rules []jit.NSGRule, behind []jit.LockedMachine) *jit.Finding {
	if len(behind) == 0 {
		return nil
	}
	var names, vms []string
	for _, r := range rules {
		if jit.IsDefenderJITRule(r.Name) {
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	for _, m := range behind {
		vms = append(vms, m.Key)
	}
	f := jit.Error("Network security group is managed by Defender for Cloud's JIT",
		fmt.Sprintf("Network security group %s holds Microsoft Defender for Cloud's own JIT rules (%s), so Defender's just-in-time VM access "+
			"manages it; two JIT engines on one NSG fight over its rules. It is on the path of %s. Disable Defender's JIT policy for "+
			"these VMs (which removes its rules), or leave them out of this jit_policy.",
			nsg, strings.Join(names, ", "), strings.Join(vms, ", ")), pathMachines...)
	return &f
}
