package aws

import (
	"context"
	"errors"
	"fmt"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
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
// security groups. An instance is read once per provider process, in one
// Describe call with the other instances read at the same time.
func (c *Client) Machine(ctx context.Context, instanceID string) (*jit.Machine, error) {
	return c.instances.Get(ctx, instanceID, func(ctx context.Context) (*jit.Machine, error) {
		return c.instance(ctx, instanceID)
	})
}

func deviceIndex(eni types.InstanceNetworkInterface) int32 {
	if eni.Attachment == nil {
		return 1 << 30
	}
	return awssdk.ToInt32(eni.Attachment.DeviceIndex)
}
