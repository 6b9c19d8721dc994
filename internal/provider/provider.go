// Package provider is the jit Terraform provider: its configuration, resources,
// data sources and ephemeral resources. Schemas live here and nowhere else.
package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

var _ provider.ProviderWithEphemeralResources = (*jitProvider)(nil)

type jitProvider struct {
	version string
	// clock decides when grants expire; tests move a fake one.
	clock jit.Clock
}

// New returns a constructor of the provider, as providerserver expects.
func New(version string) func() provider.Provider { return newWithClock(version, jit.NewClock()) }

func newWithClock(version string, clock jit.Clock) func() provider.Provider {
	return func() provider.Provider { return &jitProvider{version: version, clock: clock} }
}

type providerModel struct {
	Azure *azureBlockModel `tfsdk:"azure"`
	AWS   *awsBlockModel   `tfsdk:"aws"`
}

type azureBlockModel struct {
	SubscriptionID          types.String `tfsdk:"subscription_id"`
	Environment             types.String `tfsdk:"environment"`
	ResourceManagerEndpoint types.String `tfsdk:"resource_manager_endpoint"`
}

type awsBlockModel struct {
	Region   types.String `tfsdk:"region"`
	Profile  types.String `tfsdk:"profile"`
	Endpoint types.String `tfsdk:"endpoint"`
}

func (p *jitProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "jit"
	resp.Version = p.version
}

func (p *jitProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Just-in-time access to the management ports of Azure VMs and EC2 instances. " +
			"Configure the `azure` block, the `aws` block, or both; touching a cloud whose block is absent is an error.",
		Blocks: map[string]schema.Block{
			"azure": schema.SingleNestedBlock{
				MarkdownDescription: "Azure Resource Manager access. Credentials follow the azurerm conventions: " +
					"`ARM_TENANT_ID`, `ARM_CLIENT_ID` and `ARM_CLIENT_SECRET` for a service principal, otherwise the " +
					"azidentity default chain (environment, workload identity, managed identity, Azure CLI).",
				Attributes: map[string]schema.Attribute{
					"subscription_id": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "Subscription listed by data sources and commands that scan a scope. Defaults to `ARM_SUBSCRIPTION_ID`. Resources take the subscription from each resource ID.",
					},
					"environment": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "Azure cloud: `public` (default), `usgovernment` or `china`. Defaults to `ARM_ENVIRONMENT`.",
						Validators:          []validator.String{stringvalidator.OneOf("public", "usgovernment", "china")},
					},
					"resource_manager_endpoint": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "Overrides the Resource Manager endpoint of the environment. Plain `http://` is accepted " +
							"only on a loopback address (a local emulator), so credentials never travel in clear text.",
					},
				},
			},
			"aws": schema.SingleNestedBlock{
				MarkdownDescription: "Amazon EC2 access. Credentials come from the AWS SDK default chain (environment, shared files, SSO, instance role).",
				Attributes: map[string]schema.Attribute{
					"region": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "Region of the instances. Defaults to `AWS_REGION` or the profile's region.",
					},
					"profile": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "Shared configuration profile. Defaults to `AWS_PROFILE`.",
					},
					"endpoint": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "Overrides the EC2 endpoint (`AWS_ENDPOINT_URL_EC2` is honoured too). Plain `http://` " +
							"is accepted only on a loopback address.",
					},
				},
			},
		},
	}
}

func (p *jitProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	c := &clients{clock: p.clock}
	userAgent := "terraform-provider-jit/" + p.version
	// An absent single nested block is null, so a nil pointer here.
	if cfg.Azure != nil {
		az, err := azure.New(azure.Config{
			SubscriptionID:          withEnv(cfg.Azure.SubscriptionID, "ARM_SUBSCRIPTION_ID"),
			Environment:             withEnv(cfg.Azure.Environment, "ARM_ENVIRONMENT"),
			ResourceManagerEndpoint: cfg.Azure.ResourceManagerEndpoint.ValueString(),
			UserAgent:               userAgent,
		})
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("azure"), "Invalid Azure configuration", err.Error())
			return
		}
		c.azure = az
	}
	if cfg.AWS != nil {
		client, err := aws.New(ctx, aws.Config{
			Region:    cfg.AWS.Region.ValueString(),
			Profile:   cfg.AWS.Profile.ValueString(),
			Endpoint:  cfg.AWS.Endpoint.ValueString(),
			UserAgent: userAgent,
		})
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("aws"), "Invalid AWS configuration", err.Error())
			return
		}
		c.aws = client
	}
	resp.DataSourceData = c
	resp.ResourceData = c
	resp.EphemeralResourceData = c
}

func (p *jitProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		newPolicyResource,
		newAccessRequestResource,
	}
}

func (p *jitProvider) EphemeralResources(context.Context) []func() ephemeral.EphemeralResource {
	return []func() ephemeral.EphemeralResource{
		newAccessEphemeral,
	}
}

func (p *jitProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		newVirtualMachineDataSource,
	}
}

// clients is what Configure hands to resources and data sources.
type clients struct {
	azure *azure.Client
	aws   *aws.Client
	clock jit.Clock
}

// machine resolves a VM or instance in whichever cloud its ID names.
func (c *clients) machine(ctx context.Context, id string) (*jit.Machine, error) {
	cloud, err := jit.CloudOf(id)
	if err != nil {
		return nil, err
	}
	switch cloud {
	case jit.CloudAzure:
		if c.azure == nil {
			return nil, errNoBlock("azure", id)
		}
		return c.azure.Machine(ctx, id)
	default:
		if c.aws == nil {
			return nil, errNoBlock("aws", id)
		}
		return c.aws.Machine(ctx, id)
	}
}

func errNoBlock(block, id string) error {
	return fmt.Errorf("%s is on %s but the provider configuration has no %s block; add `%s {}` to the provider \"jit\" block", id, block, block, block)
}

// isNotFound tells whether err means the VM or instance does not exist.
func isNotFound(err error) bool {
	return errors.Is(err, azure.ErrNotFound) || errors.Is(err, aws.ErrNotFound)
}

func withEnv(v types.String, env string) string {
	if s := v.ValueString(); s != "" {
		return s
	}
	return os.Getenv(env)
}

// azureClient returns the Azure client for an Azure resource ID, or the
// missing-block error naming it.
func (c *clients) azureClient(id string) (*azure.Client, error) {
	if c.azure == nil {
		return nil, errNoBlock("azure", id)
	}
	return c.azure, nil
}

// machineIfAny resolves a machine that may be gone: nil, and no error, then.
func (c *clients) machineIfAny(ctx context.Context, id string) (*jit.Machine, error) {
	m, err := c.machine(ctx, id)
	if isNotFound(err) {
		return nil, nil
	}
	return m, err
}

// requestor names who is asking for access to m: the identity of the
// provider's credentials in m's cloud.
func (c *clients) requestor(ctx context.Context, m *jit.Machine) (string, error) {
	if m.Cloud == jit.CloudAzure {
		return c.azure.Requestor(ctx)
	}
	return c.aws.CallerIdentity(ctx)
}

// untagMachine removes a policy's settings from a machine, if they are that policy's.
func (c *clients) untagMachine(ctx context.Context, id, policy string) error {
	m, err := c.machine(ctx, id)
	if err != nil {
		return err
	}
	if owner, _, ok, _ := jit.PolicyFromTags(m.Tags); !ok || owner != policy {
		return nil
	}
	return c.tagMachine(ctx, m, nil)
}

// tagMachine writes a policy's settings onto a machine (set) and removes
// any other policy setting it carries; set nil removes them all.
func (c *clients) tagMachine(ctx context.Context, m *jit.Machine, set map[string]string) error {
	if m.Cloud == jit.CloudAzure {
		return c.azure.UpdateMachineTags(ctx, m.ID, set, jit.IsPolicyTag)
	}
	return c.aws.UpdateInstanceTags(ctx, m, set, jit.IsPolicyTag)
}

// policyMachines finds, for an import, the machines tagged with a policy.
func (c *clients) policyMachines(ctx context.Context, policy string) ([]string, error) {
	var ids []string
	if c.azure != nil {
		found, err := c.azure.TaggedMachines(ctx, jit.TagPolicy, policy)
		if err != nil {
			return nil, err
		}
		ids = append(ids, found...)
	}
	if c.aws != nil {
		found, err := c.aws.TaggedInstances(ctx, jit.TagPolicy, policy)
		if err != nil {
			return nil, err
		}
		ids = append(ids, found...)
	}
	return ids, nil
}

func mustCompile(expr string) *regexp.Regexp { return regexp.MustCompile(expr) }
