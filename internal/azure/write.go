package azure

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/jitaccess/terraform-provider-jit/internal/retry"
)

// pollFrequency is how often a long-running operation is polled when ARM
// sends no Retry-After.
const pollFrequency = time.Second

var pollOptions = &runtime.PollUntilDoneOptions{Frequency: pollFrequency}

// retryableCodes are ARM error codes that mean "try again later": an NSG or
// firewall accepts one write at a time, and ARM throttles writes.
var retryableCodes = map[string]bool{
	"AnotherOperationInProgress":          true,
	"RetryableErrorDueToAnotherOperation": true,
	"RetryableError":                      true,
	"TooManyRequests":                     true,
}

// classify decides whether an ARM failure is worth another attempt. Writes
// are PUTs and DELETEs of whole rules, so repeating one after a dropped
// connection is safe: the retry converges on the same result.
func classify(err error) (bool, time.Duration) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false, 0
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		after := retryAfter(re.RawResponse)
		switch {
		case retryableCodes[re.ErrorCode]:
			return true, after
		case re.StatusCode == http.StatusTooManyRequests, re.StatusCode >= 500:
			return true, after
		}
		return false, 0
	}
	// No response at all: the connection failed or dropped, possibly after
	// the write was applied. Credential failures are not retried.
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), 0
}

func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	return 0
}

// withRetry runs a write until it succeeds, fails for good, or ctx (the
// resource's timeout) ends.
func withRetry(ctx context.Context, op func(context.Context) error) error {
	return retry.Do(ctx, retry.DefaultBackoff, classify, op)
}

// IsPriorityConflict tells whether ARM refused a security rule because
// another rule of the NSG holds its priority and direction.
func IsPriorityConflict(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == "SecurityRuleConflict"
}
