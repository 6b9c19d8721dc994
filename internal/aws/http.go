package aws

import (
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// chainHTTPClient is the HTTP client the config chain built, or the SDK's
// default one: the chain builds its own only for AWS_CA_BUNDLE, and
// leaves the choice to each service client otherwise.
func chainHTTPClient(built awssdk.HTTPClient) awssdk.HTTPClient {
	if built == nil {
		return awshttp.NewBuildableClient()
	}
	return built
}
