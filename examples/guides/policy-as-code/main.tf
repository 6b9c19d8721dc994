# In the platform team's infrastructure repository, next to the machines it
# protects. The pull request's plan lists every deny rule the policy writes
# (NSG, priority, port) and every EC2 ingress rule it revokes; reviewers
# approve that diff, and the apply writes exactly it.

locals {
  # In your repository: azurerm_linux_virtual_machine.app.id and
  # aws_instance.db.id.
  app_vm = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web2"
  db     = "i-0a1b2c3d4e5f60718"
}

resource "jit_policy" "prod" {
  name                = "prod-app"
  virtual_machine_ids = [local.app_vm, local.db]

  port {
    number                          = 22
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT3H"
  }
  port {
    number                          = 3389
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT1H"
  }
}

output "deny_rules" {
  description = "Where each port is locked on Azure: NSG, rule, priority."
  value       = [for r in jit_policy.prod.rules : "${basename(r.target_id)} ${r.name} @${r.priority}"]
}

output "revoked_ingress_rules" {
  description = "The EC2 ingress rules the policy keeps revoked, restored on destroy."
  value       = [for r in jit_policy.prod.revoked_ingress_rules : "${r.security_group_id}: ${r.action} ${r.rule}"]
}
