package aws

import (
	"context"
	"errors"
	"fmt"
	"sort"

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
			m := &jit.Machine{Cloud: jit.CloudAWS, ID: instanceID, Location: c.Region, Tags: map[string]string{}}
			if inst.State != nil {
				m.State = string(inst.State.Name)
			}
			for _, t := range inst.Tags {
				m.Tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
			}
			m.Name = m.Tags["Name"]
			// Primary (device index 0) first, as on Azure.
			sort.SliceStable(inst.NetworkInterfaces, func(i, j int) bool {
				return deviceIndex(inst.NetworkInterfaces[i]) < deviceIndex(inst.NetworkInterfaces[j])
			})
			for _, eni := range inst.NetworkInterfaces {
				nic := jit.NetworkInterface{ID: awssdk.ToString(eni.NetworkInterfaceId), SubnetID: awssdk.ToString(eni.SubnetId)}
				for _, ip := range eni.PrivateIpAddresses {
					nic.PrivateIPs = append(nic.PrivateIPs, awssdk.ToString(ip.PrivateIpAddress))
				}
				if len(nic.PrivateIPs) == 0 && eni.PrivateIpAddress != nil {
					nic.PrivateIPs = []string{*eni.PrivateIpAddress}
				}
				for _, g := range eni.Groups {
					nic.SecurityGroupIDs = append(nic.SecurityGroupIDs, awssdk.ToString(g.GroupId))
				}
				m.Interfaces = append(m.Interfaces, nic)
			}
			return m, nil
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
