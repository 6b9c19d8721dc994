// Package azure translates the core's plans into Azure Resource Manager calls:
// it resolves a VM's network path (VM → NICs → NIC and subnet NSGs) and, for
// policies and grants, writes rules one at a time.
package azure

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/jitaccess/terraform-provider-jit/internal/endpoint"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/locks"
	"github.com/jitaccess/terraform-provider-jit/internal/readcache"
)

// Environments maps the provider's environment names to Azure clouds.
var Environments = map[string]cloud.Configuration{
	"public":       cloud.AzurePublic,
	"usgovernment": cloud.AzureGovernment,
	"china":        cloud.AzureChina,
}

// Config is the provider's azure block after environment fallbacks.
type Config struct {
	SubscriptionID          string
	Environment             string
	ResourceManagerEndpoint string
	UserAgent               string
}

// Client reaches ARM for every subscription the configuration touches; the
// subscription of each call comes from the resource ID.
type Client struct {
	SubscriptionID string

	cred    azcore.TokenCredential
	options *arm.ClientOptions
	// scope is Resource Manager's token scope, for Requestor.
	scope string

	// locks serialise this process's writes per NSG, firewall and VM.
	locks locks.Keyed
	// The process's reads, shared by every resource, data source and
	// sweep of the operation (see internal/readcache).
	vms       *readcache.Cache[vmRecord]
	nics      *readcache.Cache[jit.NetworkInterface]
	subnets   *readcache.Cache[subnetRecord]
	nsgs      *readcache.Cache[[]jit.NSGRule]
	firewalls *readcache.Cache[Firewall]
	publicIPs *readcache.Cache[string]

	mu      sync.Mutex
	network map[string]*armnetwork.ClientFactory
	compute map[string]*armcompute.ClientFactory
	// tags reaches the Tags API (record.go).
	tags *arm.Client
	// seats are the VM tags planned requests will take (record.go).
	seats recordSeats
}

// New builds a client. Credentials follow what azurerm users expect:
// ARM_TENANT_ID/ARM_CLIENT_ID/ARM_CLIENT_SECRET for a service principal,
// otherwise azidentity's default chain (environment, workload identity,
// managed identity, Azure CLI).
func New(cfg Config) (*Client, error) {
	env := cfg.Environment
	if env == "" {
		env = "public"
	}
	cloudCfg, ok := Environments[env]
	if !ok {
		return nil, &engine.SettingError{Setting: "environment", Err: fmt.Errorf("unknown environment %q (expected public, usgovernment or china)", env)}
	}
	insecure := false
	if cfg.ResourceManagerEndpoint != "" {
		var err error
		if insecure, err = endpoint.Check(cfg.ResourceManagerEndpoint); err != nil {
			return nil, &engine.SettingError{Setting: "resource_manager_endpoint", Err: err}
		}
		rm := cloudCfg.Services[cloud.ResourceManager]
		rm.Endpoint = strings.TrimRight(cfg.ResourceManagerEndpoint, "/")
		cloudCfg.Services = map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: rm}
	}
	cred, err := newCredential(cloudCfg)
	if err != nil {
		return nil, err
	}
	return &Client{
		SubscriptionID: cfg.SubscriptionID,
		cred:           cred,
		scope:          cloudCfg.Services[cloud.ResourceManager].Audience + "/.default",
		options: &arm.ClientOptions{
			ClientOptions: policy.ClientOptions{
				Cloud:                           cloudCfg,
				InsecureAllowCredentialWithHTTP: insecure,
				Telemetry:                       policy.TelemetryOptions{ApplicationID: cfg.UserAgent},
				// withRetry is the one retry of every call: the SDK's
				// would repeat each of its attempts.
				Retry: policy.RetryOptions{MaxRetries: -1},
				// Each call names its flow in its User-Agent.
				PerCallPolicies: []policy.Policy{flowPolicy{}},
			},
			// Registration needs subscription-wide write rights the
			// requester role deliberately lacks; Microsoft.Network and
			// Microsoft.Compute are registered wherever VMs exist.
			DisableRPRegistration: true,
		},
		network:   map[string]*armnetwork.ClientFactory{},
		compute:   map[string]*armcompute.ClientFactory{},
		vms:       readcache.New(vmRecord.clone),
		nics:      readcache.New(cloneInterface),
		subnets:   readcache.New[subnetRecord](nil),
		nsgs:      readcache.New(cloneRules),
		firewalls: readcache.New(Firewall.clone),
		publicIPs: readcache.New[string](nil),
	}, nil
}

func newCredential(cloudCfg cloud.Configuration) (azcore.TokenCredential, error) {
	tenant, clientID, secret := os.Getenv("ARM_TENANT_ID"), os.Getenv("ARM_CLIENT_ID"), os.Getenv("ARM_CLIENT_SECRET")
	opts := azcore.ClientOptions{Cloud: cloudCfg}
	if clientID != "" && secret != "" {
		if tenant == "" {
			return nil, fmt.Errorf("ARM_CLIENT_ID and ARM_CLIENT_SECRET are set but ARM_TENANT_ID is not")
		}
		cred, err := azidentity.NewClientSecretCredential(tenant, clientID, secret, &azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
		if err != nil {
			return nil, fmt.Errorf("service principal credential: %w", err)
		}
		return cred, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts, TenantID: tenant})
	if err != nil {
		return nil, fmt.Errorf("azure credential chain: %w", err)
	}
	return cred, nil
}

func (c *Client) networkClients(subscriptionID string) (*armnetwork.ClientFactory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.network[strings.ToLower(subscriptionID)]
	if f == nil {
		var err error
		if f, err = armnetwork.NewClientFactory(subscriptionID, c.cred, c.options); err != nil {
			return nil, err
		}
		c.network[strings.ToLower(subscriptionID)] = f
	}
	return f, nil
}

func (c *Client) computeClients(subscriptionID string) (*armcompute.ClientFactory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.compute[strings.ToLower(subscriptionID)]
	if f == nil {
		var err error
		if f, err = armcompute.NewClientFactory(subscriptionID, c.cred, c.options); err != nil {
			return nil, err
		}
		c.compute[strings.ToLower(subscriptionID)] = f
	}
	return f, nil
}
