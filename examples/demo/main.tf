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

# Lock SSH and RDP on the web VM: deny rules land in its NIC's NSG and its
# subnet's NSG, after the existing bastion rule that already decides port 22.
resource "jit_policy" "web" {
  name                = "prod-web"
  virtual_machine_ids = [local.web_vm]

  port {
    number                          = 22
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT2H"
  }
  port {
    number = 3389
  }
}

# Alice asks for SSH until a given time (run.sh sets a time a few seconds
# ahead, to show expiry). Checked at plan time against the policy that the
# VM's tags record; the grant goes just ahead of the deny.
variable "ssh_until" {
  description = "End of alice's SSH access, RFC 3339; null for no request."
  type        = string
  default     = null
}

resource "jit_access_request" "alice" {
  count              = var.ssh_until == null ? 0 : 1
  virtual_machine_id = local.web_vm
  justification      = "INC-4211 disk full"
  depends_on         = [jit_policy.web]

  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    end_time_utc                  = var.ssh_until
  }
}

data "jit_virtual_machine" "web" {
  virtual_machine_id = one(jit_policy.web.virtual_machine_ids)
}

data "jit_virtual_machine" "db" {
  virtual_machine_id = local.db_vm
}

output "policy_rules" {
  description = "Every deny rule the policy owns: where, at which priority, for which port."
  value       = [for r in jit_policy.web.rules : "${basename(r.target_id)}: ${r.name} priority ${r.priority} (${r.port}/${r.protocol})"]
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
  value = [for r in jit_access_request.alice : {
    connect = r.port[0].connection_details
    until   = r.port[0].end_time_utc
    status  = r.port[0].status
    rules   = [for rule in r.rules : "${basename(rule.target_id)}: ${rule.name} priority ${rule.priority}"]
  }]
}
