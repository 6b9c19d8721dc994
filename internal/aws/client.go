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
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/jitaccess/terraform-provider-jit/internal/endpoint"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
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
	// STS names the caller, a grant's requestor.
	STS *sts.Client
	// locks serialise this process's writes per security group (grants.go
	// has those per network interface).
	locks locks.Keyed
	// The process's reads (see reads.go and internal/readcache).
	instances *readcache.Cache[*jit.Machine]
	groups    *readcache.Cache[*SecurityGroup]
	caller    *readcache.Cache[string]
	batches   instanceBatches
}

// guardedClient is the HTTP client of every EC2 and STS call. It refuses,
// before any connection, a request in plain HTTP to a host that is not
// loopback, wherever the SDK found that endpoint (the aws block, the
// environment, a shared config file's endpoint_url, a [services] section),
// so signed requests and session tokens never travel in clear text.
//
// It also hides the request body's WriterTo from net/http. smithy closes
// the body once response headers arrive; if net/http has not made its
// final read of the body by then, WriteTo's io.EOF makes it close the
// connection mid-response, and a write that already happened is retried
// (an authorize then fails with InvalidPermission.Duplicate). A fast
// endpoint on loopback hits this often; hiding WriteTo makes net/http copy
// with Read, which ends cleanly.
type guardedClient struct{ next awssdk.HTTPClient }

func (c guardedClient) Do(r *http.Request) (*http.Response, error) {
	if strings.EqualFold(r.URL.Scheme, "http") && !endpoint.IsLoopback(r.URL.Hostname()) {
		return nil, fmt.Errorf("refusing to send a signed request in plain HTTP to %s, which is not a loopback address: use https", r.URL.Host)
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return c.next.Do(r)
}

// New loads the AWS config chain and builds the EC2 and STS clients. The
// aws block's endpoint serves both (an emulator, a VPC endpoint or a
// LocalStack answers both on one address); without it, each follows the
// config chain.
func New(ctx context.Context, cfg Config) (*Client, error) {
	// Checked before the configuration loads, which could fail first for
	// another reason.
	if cfg.Endpoint != "" {
		if _, err := endpoint.Check(cfg.Endpoint); err != nil {
			return nil, &engine.SettingError{Setting: "endpoint", Err: err}
		}
	}
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
	awsCfg.HTTPClient = guardedClient{chainHTTPClient(awsCfg.HTTPClient)}
	// Each call, to EC2 and STS alike, names its flow in its User-Agent.
	awsCfg.APIOptions = append(awsCfg.APIOptions, addFlowUserAgent)
	if awsCfg.Region == "" {
		return nil, &engine.SettingError{Setting: "region", Err: errors.New("no AWS region: set it, AWS_REGION, or a region in the profile")}
	}
	override := func(base **string) {
		if cfg.Endpoint != "" {
			*base = awssdk.String(cfg.Endpoint)
		}
	}
	ec2Client := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) { override(&o.BaseEndpoint) })
	stsClient := sts.NewFromConfig(awsCfg, func(o *sts.Options) { override(&o.BaseEndpoint) })
	// The endpoints are checked as the SDK resolved them, whatever set
	// them, so that a bad one is a configuration error, not a refused call.
	for service, base := range map[string]*string{"EC2": ec2Client.Options().BaseEndpoint, "STS": stsClient.Options().BaseEndpoint} {
		if base == nil {
			continue // the SDK's own https endpoint for the region
		}
		if _, err := endpoint.Check(*base); err != nil {
			return nil, fmt.Errorf("the %s endpoint the AWS configuration resolves to: %w", service, err)
		}
	}
	return &Client{
		Region: awsCfg.Region, EC2: ec2Client, STS: stsClient,
		instances: readcache.New(cloneMachine), groups: readcache.New(cloneGroup), caller: readcache.New[string](nil),
	}, nil
}
