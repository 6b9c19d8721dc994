package azure

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Each NIC with no NSG on it or its subnet is a reason, before the
// reasons found beyond the machine (a firewall managed by a policy).
func TestUnsupported_eachNICWithoutAnNSG(t *testing.T) {
	m := &jit.Machine{Cloud: name, ID: "vm", Interfaces: []jit.NetworkInterface{
		{ID: "nic-bare"}, {ID: "nic-ok", NetworkSecurityGroupID: "nsg"}, {ID: "nic-subnet", SubnetNetworkSecurityGroupID: "nsg"}, {ID: "nic-bare-2"},
	}}
	got, reasons := jit.Classify(m, true, append(NewBackend(nil, "").Unsupported(m), "firewall managed by a policy")...)
	want := []string{"nic-bare", "nic-bare-2", "firewall managed by a policy"}
	if got != jit.Unsupported || len(reasons) != len(want) {
		t.Fatalf("Classify = %s %q, want Unsupported for %q", got, reasons, want)
	}
	for i, w := range want {
		if !strings.Contains(reasons[i], w) {
			t.Errorf("reason %d %q does not say %q", i, reasons[i], w)
		}
	}
	if !strings.Contains(reasons[0], "no network security group on the VM's path") {
		t.Errorf("reason %q does not say what is missing", reasons[0])
	}
}

// A machine ID is recognised by its form, whatever its case.
func TestCloud_ownsARMResourceIDs(t *testing.T) {
	for id, want := range map[string]bool{
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm": true,
		"/SUBSCRIPTIONS/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm": true,
		"/subscriptions/":                   false,
		"i-0abc1234":                        false,
		"subscriptions/s/resourceGroups/rg": false,
	} {
		if got := Cloud.OwnsMachineID(id); got != want {
			t.Errorf("OwnsMachineID(%q) = %v, want %v", id, got, want)
		}
	}
}

// A request whose record could not be written gives back the seats its
// plan reserved: the other requests planned in the same process are not
// refused for room it no longer takes.
func TestWriteRecord_aFailedRecordFreesItsSeats(t *testing.T) {
	c := &Client{}
	vm := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web"
	full := &jit.Machine{ID: vm, Tags: map[string]string{}}
	for i := range maxTags {
		full.Tags[fmt.Sprintf("t%d", i)] = "x"
	}
	g := engine.Grant{ID: "req-1", Policy: "web", Requestor: "ci", OnBehalfOf: "alice@example.com", Justification: "INC-1"}
	need := len(recordTags(g))
	if need == 0 {
		t.Fatal("the request needs no record tag; the test needs one that does")
	}
	if _, ok := c.seats.take(vm, requestKey(g), maxTags-need, need); !ok {
		t.Fatal("the plan found no room")
	}
	if err := c.writeRecord(t.Context(), full, g); err == nil {
		t.Fatal("a record past Azure's tag limit was written")
	}
	other := engine.Grant{ID: "req-2", Policy: "web", Requestor: "ci", OnBehalfOf: "bob@example.com", Justification: "INC-2"}
	if others, ok := c.seats.take(vm, requestKey(other), maxTags-need, need); !ok || others != 0 {
		t.Errorf("another request finds %d seats taken (room %v), want the failed one's freed", others, ok)
	}
}
