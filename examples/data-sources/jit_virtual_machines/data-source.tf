# Every VM of the provider's subscription and every instance of its region
# with a management port open to the internet and no jit_policy.
data "jit_virtual_machines" "unprotected" {
  classifications         = ["Not configured"]
  exposed_management_port = true
}

# The fleet of two resource groups, by classification.
data "jit_virtual_machines" "prod" {
  azure_resource_group_names = ["prod-web", "prod-db"]
  tags                       = { env = "prod" }
}

output "unprotected" {
  value = [for vm in data.jit_virtual_machines.unprotected.virtual_machines : "${vm.id}: ${join(", ", [for p in vm.exposed_management_ports : tostring(p)])}"]
}

output "prod_by_classification" {
  value = { for c in ["Configured", "Not configured", "Unsupported"] : c => [
    for vm in data.jit_virtual_machines.prod.virtual_machines : vm.name if vm.classification == c
  ] }
}
