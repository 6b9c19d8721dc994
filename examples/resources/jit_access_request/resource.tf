# Open SSH on a VM locked by a jit_policy, for one address, for an hour. The
# request is checked at plan time against the policy recorded on the VM, so
# it can live in its own configuration, applied by the pipeline that holds
# the rights to write rules (NSG allows on Azure, a grant security group on
# AWS). on_behalf_of records whom that pipeline acts for.
resource "jit_access_request" "alice" {
  virtual_machine_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web-1"
  justification      = "INC-4211 disk full"
  on_behalf_of       = "alice"

  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration                      = "PT1H"
  }
}

# Or until a fixed time.
resource "jit_access_request" "maintenance" {
  virtual_machine_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web-2"
  justification      = "CHG-118 patch window"

  port {
    number                        = 3389
    allowed_source_address_prefix = "10.20.0.0/24"
    end_time_utc                  = "2026-12-01T06:00:00Z"
  }
}

output "ssh_to" {
  value = jit_access_request.alice.port[0].connection_details
}
