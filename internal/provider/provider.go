// Package provider is the jit Terraform provider: its configuration, resources,
// data sources and ephemeral resources. Schemas live here and nowhere else.
package provider

import (
	"cmp"
	"context"
	"fmt"

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
	"github.com/jitaccess/terraform-provider-jit/internal/clouds"
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
	blocks := map[string]schema.Block{}
	for _, c := range clouds.All {
		attrs := map[string]schema.Attribute{}
		for _, s := range c.Settings {
			if s.Description == "" {
				continue // a flag of the commands only
			}
			a := schema.StringAttribute{Optional: true, MarkdownDescription: s.Description}
			if len(s.OneOf) > 0 {
				a.Validators = []validator.String{stringvalidator.OneOf(s.OneOf...)}
			}
			attrs[s.Name] = a
		}
		blocks[c.Name] = schema.SingleNestedBlock{MarkdownDescription: c.Description, Attributes: attrs}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Just-in-time access to the management ports of Azure VMs and EC2 instances. " +
			"Configure the `azure` block, the `aws` block, or both; touching a cloud whose block is absent is an error.",
		Blocks: blocks,
	}
}

// Configure connects each cloud whose block is present; the engine still
// knows the others, to name the block a machine of theirs needs.
func (p *jitProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	userAgent := "terraform-provider-jit/" + p.version
	var backends []engine.Backend
	for _, c := range clouds.All {
		var block types.Object
		resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root(c.Name), &block)...)
		if resp.Diagnostics.HasError() {
			return
		}
		if block.IsNull() { // an absent single nested block
			continue
		}
		settings := map[string]string{}
		for _, s := range c.Settings {
			v, _ := block.Attributes()[s.Name].(types.String) // a flag-only setting is absent: ""
			settings[s.Name] = cmp.Or(v.ValueString(), s.FromEnv())
		}
		b, err := c.Connect(ctx, settings, userAgent)
		if err != nil {
			at := path.Root(c.Name)
			if s := engine.RefusedSetting(err); s != "" {
				at = at.AtName(s)
			}
			resp.Diagnostics.AddAttributeError(at, "Invalid "+c.Title+" configuration", err.Error())
			return
		}
		backends = append(backends, b)
	}
	e := engine.New(p.clock, backends, clouds.All...)
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
		newVirtualMachinesDataSource,
		newRoleDefinitionDataSource,
	}
}

// roleDocuments render each cloud's least-privilege permissions per flow
// for jit_role_definition; the backend packages own the actions, as they
// make the calls.
var roleDocuments = struct {
	azureActions func(engine.Flow) ([]string, error)
	azureRole    func(flow engine.Flow, name, description string, scopes []string) (string, error)
	awsActions   func(engine.Flow) ([]string, error)
	awsPolicy    func(engine.Flow) (string, error)
}{azure.RoleActions, azure.RoleDefinitionJSON, aws.PolicyActions, aws.PolicyJSON}

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
