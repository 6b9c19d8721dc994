// Package aws translates the core's plans into EC2 calls: it resolves an
// instance's network path (instance → ENIs → security groups) and, for
// policies and grants, revokes, authorises and attaches.
package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/jitaccess/terraform-provider-jit/internal/endpoint"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/locks"
	"github.com/jitaccess/terraform-provider-jit/internal/readcache"
)

// Config is the provider's aws block; empty fields fall back to the AWS
// config chain (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_EC2, shared files).
type Config struct {
	Region    string
	Profile   string
	Endpoint  string
	UserAgent string
}

// Client reaches EC2 in one region.
type Client struct {
	Region string
	EC2    *ec2.Client
	// STS names the caller, a grant's requestor; its endpoint follows the
	// config chain (AWS_ENDPOINT_URL_STS), not the aws block's EC2 endpoint.
	STS *sts.Client
	// locks serialise this process's writes per security group (grants.go
	// has those per network interface).
	locks locks.Keyed
	// The process's reads (see reads.go and internal/readcache).
	instances *readcache.Cache[*jit.Machine]
	groups    *readcache.Cache[*SecurityGroup]
	batches   instanceBatches
}

// opaqueBodyClient hides the request body's WriterTo from net/http. smithy
// closes the body once response headers arrive; if net/http has not made its
// final read of the body by then, WriteTo's io.EOF makes it close the
// connection mid-response, and the SDK retries a write that already
// happened (an authorize then fails with InvalidPermission.Duplicate). A fast
// endpoint on loopback hits this often; hiding WriteTo makes net/http copy
// with Read, which ends cleanly.
type opaqueBodyClient struct{ next awssdk.HTTPClient }

func (c opaqueBodyClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return c.next.Do(r)
}

// New loads the AWS config chain and builds the EC2 client.
func New(ctx context.Context, cfg Config) (*Client, error) {
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.UserAgent != "" {
		opts = append(opts, config.WithAppID(cfg.UserAgent))
	}
	// retryEC2 is the one retry of every call: the SDK's would repeat each
	// of its attempts.
	opts = append(opts, config.WithRetryer(func() awssdk.Retryer { return awssdk.NopRetryer{} }))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	// Wrapped after loading, so the chain's own HTTP settings
	// (AWS_CA_BUNDLE needs the SDK's buildable client) still apply.
	awsCfg.HTTPClient = opaqueBodyClient{chainHTTPClient(awsCfg.HTTPClient)}
	if awsCfg.Region == "" {
		return nil, errors.New("no AWS region: set region in the aws block or AWS_REGION")
	}
	// The config chain applies AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL by
	// itself; they are checked here so plain HTTP never leaves loopback.
	for _, ep := range []struct{ name, value string }{
		{"endpoint", cfg.Endpoint},
		{"AWS_ENDPOINT_URL_EC2", os.Getenv("AWS_ENDPOINT_URL_EC2")},
		{"AWS_ENDPOINT_URL", os.Getenv("AWS_ENDPOINT_URL")},
		{"AWS_ENDPOINT_URL_STS", os.Getenv("AWS_ENDPOINT_URL_STS")},
	} {
		if ep.value == "" {
			continue
		}
		if _, err := endpoint.Check(ep.value); err != nil {
			return nil, fmt.Errorf("%s: %w", ep.name, err)
		}
	}
	client := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = awssdk.String(cfg.Endpoint)
		}
	})
	return &Client{
		Region: awsCfg.Region, EC2: client, STS: sts.NewFromConfig(awsCfg),
		instances: readcache.New(cloneMachine), groups: readcache.New(cloneGroup),
	}, nil
}
