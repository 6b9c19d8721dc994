// Package provider is the jit Terraform provider: its configuration, resources,
// data sources and ephemeral resources. Schemas live here and nowhere else.
package provider

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
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
						MarkdownDescription: "Overrides the EC2 and STS endpoint (an emulator, LocalStack or VPC endpoints answering both); " +
							"without it each follows the AWS configuration (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL_STS`, `endpoint_url` in a shared config file). " +
							"Plain `http://` is accepted only on a loopback address, wherever the endpoint comes from: a signed request is never sent in clear text off this machine.",
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
	userAgent := "terraform-provider-jit/" + p.version
	var backends []engine.Backend
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
		backends = append(backends, azure.NewBackend(az, ""))
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
		backends = append(backends, aws.NewBackend(client))
	}
	e := engine.New(p.clock, backends)
	resp.DataSourceData = e
	resp.ResourceData = e
	resp.EphemeralResourceData = e
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

// configuredEngine is the engine Configure handed over; nil before the
// provider is configured (a validate).
func configuredEngine(data any, diags *diag.Diagnostics) *engine.Engine {
	if data == nil {
		return nil
	}
	e, ok := data.(*engine.Engine)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("Expected *engine.Engine, got %T. This is a bug in the provider; please report it.", data))
	}
	return e
}

func withEnv(v types.String, env string) string {
	if s := v.ValueString(); s != "" {
		return s
	}
	return os.Getenv(env)
}

// addFindings reports the engine's findings as diagnostics, at the
// attribute each names.
func addFindings(diags *diag.Diagnostics, findings ...jit.Finding) {
	for _, f := range findings {
		switch {
		case f.Path == nil && f.Severity == jit.SeverityError:
			diags.AddError(f.Summary, f.Detail)
		case f.Path == nil:
			diags.AddWarning(f.Summary, f.Detail)
		case f.Severity == jit.SeverityError:
			diags.AddAttributeError(fieldPath(f.Path), f.Summary, f.Detail)
		default:
			diags.AddAttributeWarning(fieldPath(f.Path), f.Summary, f.Detail)
		}
	}
}

// fieldPath turns a core path ({"port", 1, "number"}) into a framework path.
func fieldPath(steps []any) path.Path {
	var p path.Path
	for i, s := range steps {
		switch v := s.(type) {
		case string:
			if i == 0 {
				p = path.Root(v)
			} else {
				p = p.AtName(v)
			}
		case int:
			p = p.AtListIndex(v)
		}
	}
	return p
}
