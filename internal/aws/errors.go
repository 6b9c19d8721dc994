package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ec2Error is an EC2 or STS failure told in one line, "Code: message
// (EC2 CreateTags, HTTP 400)", instead of smithy's "operation error EC2:
// CreateTags, https response error StatusCode: 400, RequestID: …, api
// error Code: message"; it still unwraps to the SDK's error, so callers
// test codes as before.
type ec2Error struct {
	err     error
	message string
}

func (e *ec2Error) Error() string { return e.message }
func (e *ec2Error) Unwrap() error { return e.err }

// describeEC2 shortens the SDK's failure in err to what an operator needs:
// the code and message the cloud sent, or that no answer came before the
// resource's timeout (a write sent may still take effect), and the call.
// What came before the SDK's error (the attempts a retry gave up after)
// is kept.
func describeEC2(err error) error {
	var op *smithy.OperationError
	var described *ec2Error
	if err == nil || !errors.As(err, &op) || errors.As(err, &described) {
		return err // nothing of the SDK's, or told already (with its context kept)
	}
	call := op.Service() + " " + op.Operation()
	var api smithy.APIError
	var resp *smithyhttp.ResponseError
	var msg string
	switch {
	case errors.As(err, &api) && errors.As(err, &resp):
		msg = fmt.Sprintf("%s: %s (%s, HTTP %d)", api.ErrorCode(), api.ErrorMessage(), call, resp.HTTPStatusCode())
	case errors.As(err, &api):
		msg = fmt.Sprintf("%s: %s (%s)", api.ErrorCode(), api.ErrorMessage(), call)
	case errors.Is(err, context.DeadlineExceeded):
		msg = call + " got no answer before the timeout ended (context deadline exceeded); what it asked may still take effect, and the next apply converges"
	case errors.Is(err, context.Canceled):
		msg = call + " was canceled before it was answered; what it asked may still take effect, and the next apply converges"
	default:
		// No answer: the connection failed. The innermost error says how.
		inner := op.Err
		for next := errors.Unwrap(inner); next != nil; next = errors.Unwrap(inner) {
			inner = next
		}
		msg = fmt.Sprintf("%s failed without an answer: %v", call, inner)
	}
	if full, sdk := err.Error(), op.Error(); strings.HasSuffix(full, sdk) && len(full) > len(sdk) {
		msg = strings.TrimSuffix(full, sdk) + msg
	}
	return &ec2Error{err: err, message: msg}
}
