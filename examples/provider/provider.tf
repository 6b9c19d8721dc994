provider "jit" {
  # Azure VMs: credentials from ARM_TENANT_ID / ARM_CLIENT_ID / ARM_CLIENT_SECRET,
  # a managed identity or the Azure CLI.
  azure {
    subscription_id = "00000000-0000-0000-0000-000000000000"
  }

  # EC2 instances: credentials from the AWS SDK default chain.
  aws {
    region = "eu-west-1"
  }
}
