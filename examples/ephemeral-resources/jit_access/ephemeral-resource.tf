# Open SSH to a VM for the length of a pipeline run: the grant is written
# when the run opens it and revoked when the run ends. If the run is killed,
# the grant still expires after `duration`.
ephemeral "jit_access" "deploy" {
  virtual_machine_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web-1"
  justification      = "deploy pipeline run 512"
  duration           = "PT30M"

  port {
    number                        = 22
    allowed_source_address_prefix = "198.51.100.10/32"
  }
}
