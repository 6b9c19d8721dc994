# A deploy pipeline opens SSH to the VM for the length of its run: the
# grant is written when the run opens it, renewed while the run lasts
# (within the policy's maximum), and revoked when the run ends. A run
# killed half-way leaves a grant that ends at its end time like any other.

variable "runner_ip" {
  description = "The pipeline runner's public address."
  type        = string
  default     = "203.0.113.10"
}

variable "triggered_by" {
  description = "Who started the run, for the record (GITHUB_ACTOR, Build.RequestedFor)."
  type        = string
  default     = null
}

ephemeral "jit_access" "deploy" {
  virtual_machine_id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web"
  justification      = "deploy pipeline"
  on_behalf_of       = var.triggered_by
  duration           = "PT30M"

  port {
    number                        = 22
    allowed_source_address_prefix = "${var.runner_ip}/32"
  }
}

variable "release" {
  description = "The version to deploy; a new one runs the deploy step again."
  type        = string
  default     = "2026.11.1"
}

# What the run does with the access; here a placeholder for the deploy step.
resource "terraform_data" "deploy" {
  triggers_replace = [var.release]

  provisioner "local-exec" {
    command = "echo deploying over ssh to ${ephemeral.jit_access.deploy.connection_details[0]}"
  }
}
