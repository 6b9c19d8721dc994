package jit

import (
	"reflect"
	"strings"
	"testing"
)

func TestClassify_everyReasonThatApplies(t *testing.T) {
	azure := func(nics ...NetworkInterface) *Machine {
		return &Machine{Cloud: CloudAzure, ID: "vm", Interfaces: nics}
	}
	bare := NetworkInterface{ID: "nic-bare"}
	guarded := NetworkInterface{ID: "nic-ok", NetworkSecurityGroupID: "nsg"}
	for _, tc := range []struct {
		name       string
		m          *Machine
		configured bool
		more       []string
		want       Classification
		reasons    []string
	}{
		{"not configured", azure(guarded), false, nil, NotConfigured, nil},
		{"configured", azure(guarded), true, nil, Configured, nil},
		{"each NIC without an NSG, and the firewall", azure(bare, guarded, NetworkInterface{ID: "nic-bare-2"}), true, []string{"firewall managed by a policy"}, Unsupported,
			[]string{"nic-bare", "nic-bare-2", "firewall managed by a policy"}},
		{"classic", &Machine{Cloud: CloudAzure, Classic: true}, false, nil, Unsupported, []string{"classic (ASM)"}},
		{"terminated, whatever its interfaces", &Machine{Cloud: CloudAWS, State: "terminated", Interfaces: []NetworkInterface{{ID: "eni"}}}, true, nil, Unsupported, []string{"instance is terminated"}},
		{"an ENI without a group", &Machine{Cloud: CloudAWS, State: "running", Interfaces: []NetworkInterface{{ID: "eni-1"}}}, false, nil, Unsupported, []string{"eni-1 has no security group"}},
		{"no interface", &Machine{Cloud: CloudAWS, State: "running"}, false, nil, Unsupported, []string{"no network interface"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reasons := Classify(tc.m, tc.configured, tc.more...)
			if got != tc.want || len(reasons) != len(tc.reasons) {
				t.Fatalf("Classify = %s %q, want %s with %d reasons", got, reasons, tc.want, len(tc.reasons))
			}
			for i, r := range tc.reasons {
				if !strings.Contains(reasons[i], r) {
					t.Errorf("reason %d %q does not say %q", i, reasons[i], r)
				}
			}
			if tc.reasons == nil && !reflect.DeepEqual(reasons, []string(nil)) {
				t.Errorf("reasons %q for a supported machine", reasons)
			}
		})
	}
}
