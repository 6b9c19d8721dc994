package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

var _ datasource.DataSource = (*roleDefinitionDataSource)(nil)

func newRoleDefinitionDataSource() datasource.DataSource { return &roleDefinitionDataSource{} }

// roleDefinitionDataSource renders documents only: it makes no cloud call
// and needs no provider configuration.
type roleDefinitionDataSource struct{}

// flowDescriptions say what each flow's identity does.
var flowDescriptions = map[engine.Flow]string{
	engine.FlowConfigure: "Applies jit_policy: reads VMs and instances and the filters on their paths, writes and removes the JIT deny rules " +
		"(NSG security rules, the classic Azure Firewall's collection, revoked and re-authorised security group rules), keeps the " +
		"policy's settings in the machines' tags and its backups in the groups' tags, and removes the policy's expired grants.",
	engine.FlowRequest: "Applies jit_access_request and opens ephemeral jit_access: reads the machine's policy from its tags and its path, " +
		"writes and removes grant rules (NSG allows, firewall DNAT collections; on EC2, a security group of the request's own, " +
		"tagged jit-grant, attached to the primary network interface).",
	engine.FlowAudit: "Reads only: the jit_virtual_machine and jit_virtual_machines data sources (machines, their paths, grants and exposure).",
	engine.FlowRevoke: "Runs `terraform-provider-jit revoke-expired`: finds grants in the scope and removes the expired ones " +
		"(NSG rules, firewall collections, EC2 grant groups, which it detaches and deletes).",
}

func (d *roleDefinitionDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_role_definition"
}

func (d *roleDefinitionDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	flows := make([]string, len(engine.Flows))
	for i, f := range engine.Flows {
		flows[i] = string(f)
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Least-privilege permissions for one of the provider's flows, as an Azure custom role definition and an " +
			"AWS IAM policy document: exactly the actions the provider's calls in that flow need (the test suite records every call " +
			"each flow makes against the cloud emulator and fails if a role lacks one or grants one no flow uses). Each call names " +
			"its flow in its User-Agent (`jit-flow/<flow>`), so the clouds' logs (Activity Log, CloudTrail) show which role it used. " +
			"Makes no cloud call.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The flow."},
			"flow": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "`configure` (the identity applying `jit_policy`), `request` (the identity applying " +
					"`jit_access_request` and opening `jit_access`: CI, in the pull-request workflow), `audit` (read-only: the data " +
					"sources) or `revoke` (`terraform-provider-jit revoke-expired` on a schedule).",
				Validators: []validator.String{stringvalidator.OneOf(flows...)},
			},
			"name": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "The role's name in the Azure definition. Default: `jit-<flow>`.",
				Validators:          []validator.String{stringvalidator.LengthBetween(1, 512)},
			},
			"azure_assignable_scopes": schema.ListAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "The Azure definition's `AssignableScopes` (`/subscriptions/…`, `/subscriptions/…/resourceGroups/…`). Default: none, " +
					"for `azurerm_role_definition`, which takes its scope apart.",
				Validators: []validator.List{listvalidator.ValueStringsAre(stringvalidator.RegexMatches(assignableScopePattern,
					"must be /subscriptions/<id>, optionally followed by /resourceGroups/<name> or a resource, or a management group /providers/Microsoft.Management/managementGroups/<name>"))},
			},
			"description": schema.StringAttribute{Computed: true, MarkdownDescription: "What an identity holding the role does."},
			"azure_actions": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "The Azure RBAC actions, sorted: the `actions` of an `azurerm_role_definition`'s `permissions` block.",
			},
			"azure_role_definition_json": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The custom role definition as JSON (`az role definition create --role-definition`).",
			},
			"aws_actions": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "The IAM actions the policy allows, sorted.",
			},
			"aws_iam_policy_json": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "The IAM policy document as JSON, for `aws_iam_policy`'s `policy`: Describe actions on `*` (EC2 " +
					"supports no resource-level permission for them), changes narrowed by tag conditions where EC2 supports them " +
					"(the request and revoke roles change and delete only security groups tagged `jit-grant`; the configure role " +
					"writes only `jit-` and `jit:` tags).",
			},
		},
	}
}

func (d *roleDefinitionDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var data roleDefinitionModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &data)...)
	if resp.Diagnostics.HasError() {
		return
	}
	flow := engine.Flow(data.Flow.ValueString())
	name := data.Name.ValueString()
	if name == "" {
		name = "jit-" + string(flow)
	}
	var scopes []string
	resp.Diagnostics.Append(data.AzureAssignableScopes.ElementsAs(ctx, &scopes, true)...)
	if resp.Diagnostics.HasError() {
		return
	}
	description := fmt.Sprintf("terraform-provider-jit, %s flow. %s", flow, flowDescriptions[flow])
	azureActions, err := roleDocuments.azureActions(flow)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("flow"), "Unknown flow", err.Error())
		return
	}
	azureJSON, err := roleDocuments.azureRole(flow, name, description, scopes)
	if err != nil {
		resp.Diagnostics.AddError("Cannot render the Azure role definition", err.Error())
		return
	}
	awsActions, err := roleDocuments.awsActions(flow)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("flow"), "Unknown flow", err.Error())
		return
	}
	awsJSON, err := roleDocuments.awsPolicy(flow)
	if err != nil {
		resp.Diagnostics.AddError("Cannot render the IAM policy", err.Error())
		return
	}
	data.ID = types.StringValue(string(flow))
	data.Description = types.StringValue(description)
	data.AzureActions = stringList(azureActions)
	data.AzureRoleDefinitionJSON = types.StringValue(azureJSON)
	data.AWSActions = stringList(awsActions)
	data.AWSIAMPolicyJSON = types.StringValue(awsJSON)
	resp.Diagnostics.Append(resp.State.Set(ctx, &data)...)
}
