# The demo: what a platform team's infra repo would hold, applied against the
# local cloud emulator (make demo). Pointed at real clouds, leave the endpoint
# variables unset and provide credentials the usual way.

terraform {
  required_providers {
    jit = { source = "jitaccess/jit" }
  }
}

variable "azure_endpoint" {
  description = "Resource Manager endpoint override (the emulator's URL in the demo)."
  type        = string
  default     = null
}

variable "aws_endpoint" {
  description = "EC2 endpoint override (the emulator's URL in the demo)."
  type        = string
  default     = null
}

variable "subscription_id" {
  type    = string
  default = "00000000-0000-0000-0000-000000000001"
}

provider "jit" {
  azure {
    subscription_id           = var.subscription_id
    resource_manager_endpoint = var.azure_endpoint
  }
  aws {
    region   = "eu-west-1"
    endpoint = var.aws_endpoint
  }
}

locals {
  web_vm = "/subscriptions/${var.subscription_id}/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web"
  db_vm  = "i-0a1b2c3d4e5f60718"
}

# Lock SSH and RDP on the web VM and the database instance. On Azure, deny
# rules land in the VM's NIC's NSG and its subnet's NSG, after the existing
# bastion rule that already decides port 22. On EC2, the inbound rule of the
# instance's security group that opens SSH to the world is revoked, and kept
# in state and in the group's tags to be restored on destroy.
resource "jit_policy" "web" {
  name                = "prod-web"
  virtual_machine_ids = [local.web_vm, local.db_vm]

  port {
    number                          = 22
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT2H"
  }
  port {
    number = 3389
  }
}

# Alice asks for SSH to both machines until a given time (run.sh sets a time
# a few seconds ahead, to show expiry). Checked at plan time against the
# policy that each machine's tags record. On Azure the grant goes just ahead
# of the deny; on EC2 it is a security group of its own on the primary ENI.
variable "ssh_until" {
  description = "End of alice's SSH access, RFC 3339; null for no request."
  type        = string
  default     = null
}

resource "jit_access_request" "alice" {
  for_each           = var.ssh_until == null ? {} : { web = local.web_vm, db = local.db_vm }
  virtual_machine_id = each.value
  justification      = "INC-4211 disk full"
  depends_on         = [jit_policy.web]

  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    end_time_utc                  = var.ssh_until
  }
}

# Read once the policy is applied, so they show it.
data "jit_virtual_machine" "web" {
  virtual_machine_id = local.web_vm
  depends_on         = [jit_policy.web]
}

data "jit_virtual_machine" "db" {
  virtual_machine_id = local.db_vm
  depends_on         = [jit_policy.web]
}

output "policy_rules" {
  description = "Every deny rule the policy owns: where, at which priority, for which port."
  value       = [for r in jit_policy.web.rules : "${basename(r.target_id)}: ${r.name} priority ${r.priority} (${r.port}/${r.protocol})"]
}

output "revoked_ingress_rules" {
  description = "Every EC2 inbound rule the policy keeps revoked, and every remainder it re-authorised in place of a wider rule."
  value       = [for r in jit_policy.web.revoked_ingress_rules : "${r.security_group_id}: ${r.action} ${r.rule}"]
}

output "machines" {
  value = {
    for m in [data.jit_virtual_machine.web, data.jit_virtual_machine.db] : m.name => {
      cloud              = m.cloud
      classification     = m.classification
      policy             = m.policy_name
      unsupported_reason = m.unsupported_reason
      private_ips        = m.private_ip_addresses
      guarded_by         = m.security_group_ids
    }
  }
}

output "alice" {
  description = "Alice's grant: where to connect, its status and the rules it holds."
  value = { for vm, r in jit_access_request.alice : vm => {
    connect = r.port[0].connection_details
    until   = r.port[0].end_time_utc
    status  = r.port[0].status
    rules   = [for rule in r.rules : "${basename(rule.target_id)}: ${rule.name} priority ${rule.priority}"]
  } }
}
