# Rules on the requests a pull request adds or changes, run by the plan job
# against the plan's JSON (`tofu show -json plan.tfplan`):
#
#   opa eval --fail-defined -d policy -i plan.json 'data.jit.deny[msg]'
#
# exits 1 and prints each message when any applies. The provider has
# already checked each request against the VM's policy (locked port,
# allowed source, maximum duration); these are the team's own rules.
package jit

import rego.v1

# Access requests the plan creates or updates.
requests contains rc if {
	some rc in input.resource_changes
	rc.type == "jit_access_request"
	some action in rc.change.actions
	action in {"create", "update"}
}

# Every justification starts with the ticket it serves (INC-4211, CHG-118),
# so that an auditor can follow a grant to its reason.
deny contains msg if {
	some rc in requests
	not regex.match(`^[A-Z][A-Z0-9]*-[0-9]+\b`, rc.change.after.justification)
	msg := sprintf("%s: the justification %q does not start with a ticket reference such as INC-4211", [rc.address, rc.change.after.justification])
}
