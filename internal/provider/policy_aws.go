package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// awsPolicyPlan is the EC2 side of a policy's plan.
type awsPolicyPlan struct{}

// planAWS plans the EC2 instances of a policy.
func (r *policyResource) planAWS(_ context.Context, _ string, machines []*jit.Machine, _ []jit.PortProtocol, _ *policyModel, _ bool) (*awsPolicyPlan, diag.Diagnostics) {
	var diags diag.Diagnostics
	for _, m := range machines {
		diags.AddAttributeError(path.Root("virtual_machine_ids"), "EC2 instances are not supported yet", fmt.Sprintf("%s: jit_policy locks Azure VMs only in this version.", m.ID))
	}
	return nil, diags
}

func (p *awsPolicyPlan) write(context.Context, *clients, string) diag.Diagnostics { return nil }

func (p *awsPolicyPlan) release() {}
