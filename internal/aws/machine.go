package aws

import (
	"context"
	"errors"
	"fmt"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// ErrNotFound marks an instance, ENI or group that does not exist.
var ErrNotFound = engine.ErrNotFound

// notFound wraps EC2's *.NotFound codes so callers can test with errors.Is.
func notFound(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "InvalidInstanceID.NotFound", "InvalidNetworkInterfaceID.NotFound", "InvalidGroup.NotFound":
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return err
}

// Machine resolves an instance and its network path: every ENI and its
// security groups.
func (c *Client) Machine(ctx context.Context, instanceID string) (*jit.Machine, error) {
	out, err := call(ctx, c.EC2.DescribeInstances, &ec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
	if err != nil {
		return nil, fmt.Errorf("reading EC2 instance %s: %w", instanceID, notFound(err))
	}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if awssdk.ToString(inst.InstanceId) != instanceID {
				continue
			}
			return c.machineOf(inst), nil
		}
	}
	return nil, fmt.Errorf("reading EC2 instance %s: %w", instanceID, ErrNotFound)
}

func deviceIndex(eni types.InstanceNetworkInterface) int32 {
	if eni.Attachment == nil {
		return 1 << 30
	}
	return awssdk.ToInt32(eni.Attachment.DeviceIndex)
}
