package aws

import (
	"context"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

// name is EC2's provider block and machines' cloud.
const name = "aws"

// Cloud is EC2 as the provider and the commands register it.
var Cloud = engine.Cloud{
	Name:        name,
	Title:       "AWS",
	Description: "Amazon EC2 access. Credentials come from the AWS SDK default chain (environment, shared files, SSO, instance role).",
	Settings: []engine.Setting{{
		Name:        "region",
		Description: "Region of the instances. Defaults to `AWS_REGION` or the profile's region.",
		Flag:        "region", Usage: "AWS region to scan (default $AWS_REGION); AWS is skipped without a region, profile or endpoint",
		Env: "AWS_REGION", Selects: true,
	}, {
		Name:        "profile",
		Description: "Shared configuration profile. Defaults to `AWS_PROFILE`.",
		Flag:        "aws-profile", Usage: "AWS shared configuration profile",
		Selects: true,
	}, {
		Name: "endpoint",
		Description: "Overrides the EC2 and STS endpoint (an emulator, LocalStack or VPC endpoints answering both); " +
			"without it each follows the AWS configuration (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL_STS`, `endpoint_url` in a shared config file). " +
			"Plain `http://` is accepted only on a loopback address, wherever the endpoint comes from: a signed request is never sent in clear text off this machine.",
		Flag: "aws-endpoint", Usage: "EC2 endpoint override (AWS_ENDPOINT_URL_EC2 is honoured too; plain http only on loopback)",
		Selects: true,
	}},
	MachineIDForm: "an EC2 instance ID (i- followed by 8 or 17 hex digits)",
	OwnsMachineID: isInstanceID,
	Connect: func(ctx context.Context, settings map[string]string, userAgent string) (engine.Backend, error) {
		client, err := New(ctx, Config{Region: settings["region"], Profile: settings["profile"], Endpoint: settings["endpoint"], UserAgent: userAgent})
		if err != nil {
			return nil, err
		}
		return NewBackend(client), nil
	},
}

// isInstanceID tells an EC2 instance ID: i- and 8 or 17 hex digits.
func isInstanceID(id string) bool {
	if len(id) != 10 && len(id) != 19 || id[:2] != "i-" {
		return false
	}
	for _, c := range id[2:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
