# The identity CI applies access requests with: least privilege, on Azure
# and on AWS.
data "jit_role_definition" "request" {
  flow = "request"
}

resource "azurerm_role_definition" "jit_request" {
  name        = "jit-request"
  scope       = "/subscriptions/00000000-0000-0000-0000-000000000000"
  description = data.jit_role_definition.request.description
  permissions {
    actions = data.jit_role_definition.request.azure_actions
  }
}

resource "aws_iam_policy" "jit_request" {
  name   = "jit-request"
  policy = data.jit_role_definition.request.aws_iam_policy_json
}
