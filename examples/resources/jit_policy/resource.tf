# Lock SSH and RDP on two VMs. Only these ports close; existing rules that
# already decide them keep precedence (the plan warns when one keeps a port open).
resource "jit_policy" "web" {
  name = "prod-web"
  virtual_machine_ids = [
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web-1",
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web-2",
  ]

  port {
    number                          = 22
    protocol                        = "TCP"
    allowed_source_address_prefixes = ["10.0.0.0/8"]
    max_request_access_duration     = "PT3H"
  }

  port {
    number                      = 3389
    max_request_access_duration = "PT1H"
  }

  timeouts {
    create = "20m"
  }
}

# Without port blocks a policy locks Defender's defaults: 22, 3389, 5985, 5986.
resource "jit_policy" "batch" {
  name                = "batch"
  virtual_machine_ids = ["/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/batch/providers/Microsoft.Compute/virtualMachines/worker"]
}

# EC2 instances: every inbound rule of their security groups that opens SSH
# is revoked (a wider rule is split, so only port 22 closes) and restored
# exactly on destroy; the plan lists them in revoked_ingress_rules.
resource "jit_policy" "db" {
  name                = "prod-db"
  virtual_machine_ids = ["i-0123456789abcdef0"]

  port {
    number = 22
  }
}
