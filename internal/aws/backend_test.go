package aws

import (
	"testing"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// An ENI of a live instance with no security group is a reason; a
// terminated instance is reported as such, whatever its interfaces.
func TestUnsupported_anENIWithoutAGroup(t *testing.T) {
	b := NewBackend(nil)
	running := &jit.Machine{Cloud: name, State: "running", Interfaces: []jit.NetworkInterface{{ID: "eni-1"}, {ID: "eni-2", SecurityGroupIDs: []string{"sg-1"}}}}
	got, reasons := jit.Classify(running, false, b.Unsupported(running)...)
	if got != jit.Unsupported || len(reasons) != 1 || reasons[0] != "network interface eni-1 has no security group" {
		t.Errorf("Classify = %s %q, want Unsupported for eni-1 alone", got, reasons)
	}
	terminated := &jit.Machine{Cloud: name, State: "terminated", Interfaces: []jit.NetworkInterface{{ID: "eni"}}}
	if got, reasons := jit.Classify(terminated, true, b.Unsupported(terminated)...); got != jit.Unsupported || len(reasons) != 1 || reasons[0] != "instance is terminated" {
		t.Errorf("Classify = %s %q, want Unsupported for the termination alone", got, reasons)
	}
}

// Instance IDs are i- and 8 or 17 lowercase hex digits.
func TestCloud_ownsInstanceIDs(t *testing.T) {
	for id, want := range map[string]bool{
		"i-0abc1234": true, "i-0abc1234def567890": true,
		"i-12345": false, "i-0ABC1234": false, "i-0abc1234def56789": false, "sg-0abc1234": false, "": false,
	} {
		if got := Cloud.OwnsMachineID(id); got != want {
			t.Errorf("OwnsMachineID(%q) = %v, want %v", id, got, want)
		}
	}
}
