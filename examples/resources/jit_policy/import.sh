# A policy is imported by name; its VMs are found by their jit-policy tag in
# the provider's subscription (Azure) and region (EC2).
terraform import jit_policy.web prod-web
