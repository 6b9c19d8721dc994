package engine

import "context"

// Flow is which of the provider's jobs a cloud call serves: configuring
// policies, requesting access, auditing (reads only) or revoking expired
// grants. Each flow has its least-privilege role (jit_role_definition);
// the backends name the flow of every call in its User-Agent
// (jit-flow/<flow>), so the clouds' logs, and the emulator, can tell which
// role each call needs.
type Flow string

const (
	FlowConfigure Flow = "configure"
	FlowRequest   Flow = "request"
	FlowAudit     Flow = "audit"
	FlowRevoke    Flow = "revoke"
)

// Flows lists every flow, in the order the documentation gives them.
var Flows = []Flow{FlowConfigure, FlowRequest, FlowAudit, FlowRevoke}

// FlowUserAgentToken is the product name of the User-Agent token naming a
// call's flow: jit-flow/<flow>.
const FlowUserAgentToken = "jit-flow"

type flowKey struct{}

// WithFlow marks ctx as serving flow: every cloud call made with it names
// the flow.
func WithFlow(ctx context.Context, flow Flow) context.Context {
	return context.WithValue(ctx, flowKey{}, flow)
}

// FlowOf is the flow ctx serves, "" when none was set.
func FlowOf(ctx context.Context) Flow {
	f, _ := ctx.Value(flowKey{}).(Flow)
	return f
}
