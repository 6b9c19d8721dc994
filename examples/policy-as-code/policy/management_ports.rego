# The policy-as-code rule of main.tf, for OPA: no machine with a management
# port open to the internet may go without a jit_policy. Input: the JSON of
# a plan, `tofu show -json plan.tfplan` (data sources read while planning
# are in it). Evaluate with
#
#   opa eval --fail-defined -d policy -i plan.json 'data.jit.deny[msg]'
#
# which exits 1 and prints the findings when there is any.
package jit

import rego.v1

# Every jit_virtual_machines and jit_virtual_machine data source of the
# plan, in any module.
machines contains vm if {
	walk(input, [_, r])
	is_object(r)
	r.mode == "data"
	r.type == "jit_virtual_machines"
	some vm in r.values.virtual_machines
}

machines contains vm if {
	walk(input, [_, r])
	is_object(r)
	r.mode == "data"
	r.type == "jit_virtual_machine"
	vm := r.values
}

deny contains msg if {
	some vm in machines
	vm.classification == "Not configured"
	count(vm.exposed_management_ports) > 0
	rules := [rule | some e in vm.exposures; some rule in e.rules]
	msg := sprintf("%s (%s) has management ports %v open to the internet and no jit_policy: %s", [
		vm.id, vm.cloud, vm.exposed_management_ports, concat(", ", rules),
	])
}
