# Policy as code: fail the plan of an infra repository's pull request when a
# VM or instance has a management port (22, 3389, 5985, 5986) open to the
# internet and no jit_policy covers it. Natively, with a postcondition that
# fails `tofu plan`; and as data for OPA, which evaluates policy/*.rego
# against `tofu show -json` of the plan (see README.md). The endpoint
# variables point the provider at the local cloud emulator in the tests;
# against real clouds, leave them unset.

terraform {
  required_providers {
    jit = { source = "jitaccess/jit" }
  }
}

variable "subscription_id" {
  description = "The subscription whose VMs are checked."
  type        = string
  default     = "00000000-0000-0000-0000-000000000001"
}

variable "region" {
  description = "The AWS region whose instances are checked."
  type        = string
  default     = "eu-west-1"
}

variable "azure_endpoint" {
  description = "Resource Manager endpoint override (the emulator's URL in the tests)."
  type        = string
  default     = null
}

variable "aws_endpoint" {
  description = "EC2 endpoint override (the emulator's URL in the tests)."
  type        = string
  default     = null
}

variable "enforce" {
  description = "Fail the plan natively; false leaves the verdict to OPA."
  type        = bool
  default     = true
}

provider "jit" {
  azure {
    subscription_id           = var.subscription_id
    resource_manager_endpoint = var.azure_endpoint
  }
  aws {
    region   = var.region
    endpoint = var.aws_endpoint
  }
}

# Every machine of the subscription and the region, with its classification
# and the management ports its network path leaves open to the internet.
data "jit_virtual_machines" "fleet" {}

locals {
  unprotected = [
    for vm in data.jit_virtual_machines.fleet.virtual_machines :
    vm if vm.classification == "Not configured" && length(vm.exposed_management_ports) > 0
  ]
}

# The native rule: a postcondition fails the plan, naming each machine and
# the rules that expose it.
data "jit_virtual_machines" "unprotected" {
  classifications         = ["Not configured"]
  exposed_management_port = true

  lifecycle {
    postcondition {
      condition = !var.enforce || length(self.virtual_machines) == 0
      error_message = join("\n", concat(
        ["Management ports open to the internet on machines no jit_policy covers:"],
        [for vm in self.virtual_machines : format("%s (%s): ports %s, opened by %s", vm.id, vm.cloud,
          join(", ", [for p in vm.exposed_management_ports : tostring(p)]),
        join(", ", flatten([for e in vm.exposures : e.rules])))],
      ))
    }
  }
}

# The same finding as a check, reported on every plan and apply.
check "management_ports_behind_jit" {
  assert {
    condition     = length(local.unprotected) == 0
    error_message = "${length(local.unprotected)} machine(s) expose management ports to the internet without a jit_policy."
  }
}

output "unprotected" {
  description = "Machines with a management port open to the internet and no jit_policy."
  value       = [for vm in local.unprotected : vm.id]
}
