package jit

import (
	"reflect"
	"strings"
	"testing"
)

func TestClassify_everyReasonThatApplies(t *testing.T) {
	azure := func(nics ...NetworkInterface) *Machine {
		return &Machine{Cloud: "azure", ID: "vm", Interfaces: nics}
	}
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
		{"the backend's reasons, after the machine's own", &Machine{Cloud: "aws", State: "running"}, true, []string{"firewall managed by a policy"}, Unsupported,
			[]string{"no network interface", "firewall managed by a policy"}},
		{"classic", &Machine{Cloud: "azure", Classic: true}, false, nil, Unsupported, []string{"classic (ASM)"}},
		{"terminated, whatever its interfaces", &Machine{Cloud: "aws", State: "terminated", Interfaces: []NetworkInterface{{ID: "eni"}}}, true, nil, Unsupported, []string{"instance is terminated"}},
		{"no interface", &Machine{Cloud: "aws", State: "running"}, false, nil, Unsupported, []string{"no network interface"}},
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
