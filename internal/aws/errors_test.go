package aws

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
)

// An error told once and then wrapped with what the caller was doing keeps
// that context when it is told again on its way up.
func TestDescribeEC2_keepsTheContextOfAnErrorToldAlready(t *testing.T) {
	op := &smithy.OperationError{ServiceID: "EC2", OperationName: "ModifyNetworkInterfaceAttribute",
		Err: &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "bad group"}}
	told := describeEC2(op)
	wrapped := fmt.Errorf("detaching security group sg-1 from network interface eni-1: %w", told)
	got := describeEC2(wrapped).Error()
	for _, want := range []string{"detaching security group sg-1 from network interface eni-1: ", "InvalidParameterValue: bad group (EC2 ModifyNetworkInterfaceAttribute)"} {
		if !strings.Contains(got, want) {
			t.Errorf("told again: %q, want it to say %q", got, want)
		}
	}
}
