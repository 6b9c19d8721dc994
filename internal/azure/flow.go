package azure

import (
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

// flowPolicy adds the jit-flow/<flow> token of the call's context to its
// User-Agent, after the telemetry policy has written the SDK's and the
// application's tokens, so each call says which role it needs.
type flowPolicy struct{}

func (flowPolicy) Do(req *policy.Request) (*http.Response, error) {
	if flow := engine.FlowOf(req.Raw().Context()); flow != "" {
		h := req.Raw().Header
		h.Set("User-Agent", strings.TrimSpace(h.Get("User-Agent")+" "+engine.FlowUserAgentToken+"/"+string(flow)))
	}
	return req.Next()
}
