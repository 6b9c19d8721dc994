package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

// resourceEngine, embedded in a resource, is handed the engine the
// provider configured; nil before then (a validate).
type resourceEngine struct{ engine *engine.Engine }

func (r *resourceEngine) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.engine = configuredEngine(req.ProviderData, &resp.Diagnostics)
}

// dataSourceEngine is resourceEngine for data sources.
type dataSourceEngine struct{ engine *engine.Engine }

func (d *dataSourceEngine) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.engine = configuredEngine(req.ProviderData, &resp.Diagnostics)
}

// defaultTimeout bounds a CRUD call the timeouts block sets no timeout for.
const defaultTimeout = 30 * time.Minute

// withTimeout bounds ctx by an operation's timeout: the one the timeouts
// block sets (timeout is its Create, Read, Update or Delete), else
// defaultTimeout.
func withTimeout(ctx context.Context, timeout func(context.Context, time.Duration) (time.Duration, diag.Diagnostics), diags *diag.Diagnostics) (context.Context, context.CancelFunc) {
	t, d := timeout(ctx, defaultTimeout)
	diags.Append(d...)
	return context.WithTimeout(ctx, t)
}
