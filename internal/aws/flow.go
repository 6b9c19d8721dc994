package aws

import (
	"context"
	"strings"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

// addFlowUserAgent adds, to every operation of a client, a build step that
// appends the jit-flow/<flow> token of the call's context to its
// User-Agent, after the SDK's own user-agent step, so each call says which
// role it needs. SigV4 does not sign the User-Agent.
func addFlowUserAgent(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("JITFlowUserAgent", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			if flow := engine.FlowOf(ctx); flow != "" {
				req.Header.Set("User-Agent", strings.TrimSpace(req.Header.Get("User-Agent")+" "+engine.FlowUserAgentToken+"/"+string(flow)))
			}
		}
		return next.HandleBuild(ctx, in)
	}), middleware.After)
}
