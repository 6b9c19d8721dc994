# Is this VM protected, and which network objects guard it?
data "jit_virtual_machine" "web" {
  virtual_machine_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web"
}

# Fail a policy-as-code check when a VM that could be protected is not.
check "web_is_protected" {
  assert {
    condition     = data.jit_virtual_machine.web.classification != "Not configured"
    error_message = "${data.jit_virtual_machine.web.name} has management ports that no jit_policy locks."
  }
}
