# Azure operated by 21Vianet: management.chinacloudapi.cn. Requests and
# policies work as in the public cloud.
provider "jit" {
  azure {
    environment     = "china"
    subscription_id = "00000000-0000-0000-0000-000000000001"
  }
}

resource "jit_access_request" "web" {
  virtual_machine_id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web"
  justification      = "INC-5120 certificate renewal"

  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration                      = "PT1H"
  }
}
