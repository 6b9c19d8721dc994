# Access requests as reviewed pull requests. Each file under
# requests/<github login>/ is one request; review of the pull request that
# adds it is the approval, and CI applies it on merge with the privileged
# identity. The directory names the person the request is made for: the
# workflow refuses a pull request that adds a request under anyone else's.

terraform {
  required_providers {
    jit = { source = "jitaccess/jit" }
  }
  # Keep state where CI can reach it and lock it, for example:
  # backend "azurerm" {}  or  backend "s3" {}
}

# Credentials come from the environment CI sets up (OIDC federation):
# ARM_* for Azure, the AWS default chain for EC2. Requesters hold none.
provider "jit" {
  azure {}
  aws {
    region = "eu-west-1"
  }
}

locals {
  # requests/<login>/<name>.yaml → one request each.
  files = fileset(path.module, "requests/*/*.yaml")
  requests = {
    for f in local.files : trimsuffix(f, ".yaml") => merge(yamldecode(file("${path.module}/${f}")), {
      on_behalf_of = basename(dirname(f))
    })
  }
}

resource "jit_access_request" "this" {
  for_each = local.requests

  virtual_machine_id = each.value.virtual_machine_id
  justification      = each.value.justification
  on_behalf_of       = each.value.on_behalf_of

  dynamic "port" {
    for_each = each.value.ports
    content {
      number                        = port.value.number
      allowed_source_address_prefix = port.value.source
      duration                      = port.value.duration
    }
  }
}

output "connection_details" {
  description = "Where each request connects, per port."
  value       = { for k, r in jit_access_request.this : k => [for p in r.port : p.connection_details] }
}
