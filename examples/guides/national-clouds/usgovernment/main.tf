# Azure Government: the environment selects its Resource Manager endpoint
# (management.usgovcloudapi.net) and token audience. ARM_ENVIRONMENT=usgovernment
# does the same without editing the configuration.
provider "jit" {
  azure {
    environment     = "usgovernment"
    subscription_id = "00000000-0000-0000-0000-000000000001"
  }
}

data "jit_virtual_machine" "web" {
  virtual_machine_id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web"
}

output "web" {
  value = "${data.jit_virtual_machine.web.name}: ${data.jit_virtual_machine.web.classification}, policy ${data.jit_virtual_machine.web.policy_name}"
}
