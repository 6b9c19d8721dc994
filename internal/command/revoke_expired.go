// Package command holds the subcommands of the provider binary, for cron
// jobs, scheduled pipelines and auditors. Each takes its arguments, its
// output streams and a clock, and returns the process exit code, so tests
// run it in process with a fake clock against the emulator.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/endpoint"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Exit codes of revoke-expired.
const (
	ExitOK     = 0 // every expired grant found is gone
	ExitFailed = 1 // some grant or scope failed; the rest was still done
	ExitUsage  = 2 // bad flags or configuration; nothing was touched
)

// Kinds of grant in the summary.
const (
	KindNSGRule       = "nsg-rule"       // an inbound Allow rule of an NSG
	KindFirewallGrant = "firewall-grant" // the NAT and network rule collections of one grant on an Azure Firewall
	KindSecurityGroup = "security-group" // an EC2 security group attached to ENIs
)

// Summary is what revoke-expired prints on stdout, as JSON.
type Summary struct {
	// Now is the time expiry was judged against (RFC 3339, UTC).
	Now string `json:"now"`
	// Scopes are what was scanned.
	Scopes []Scope `json:"scopes"`
	// Revoked are the expired grants now gone, sorted by cloud, target, name.
	Revoked []RevokedGrant `json:"revoked"`
	// Live counts the grants found that have not expired yet.
	Live int `json:"live"`
	// Errors are the scopes that could not be scanned and the grants that
	// could not be revoked; non-empty means exit code 1.
	Errors []GrantError `json:"errors"`
}

// Scope is one scanned subscription (or resource group) or region.
type Scope struct {
	Cloud         string `json:"cloud"`
	Subscription  string `json:"subscription,omitempty"`
	ResourceGroup string `json:"resource_group,omitempty"`
	Region        string `json:"region,omitempty"`
}

// RevokedGrant is one expired grant removed (or found already gone when
// removing it).
type RevokedGrant struct {
	Cloud string `json:"cloud"`
	Kind  string `json:"kind"`
	// Target is the NSG or firewall holding the grant, or the grant's
	// security group.
	Target string `json:"target"`
	// Name is the rule's or collections' name, or the security group's.
	Name       string `json:"name"`
	EndTimeUTC string `json:"end_time_utc"`
	Requestor  string `json:"requestor"`
	// Request is the request ID, where the cloud records it (AWS).
	Request string `json:"request,omitempty"`
}

// GrantError is a scope or grant that failed.
type GrantError struct {
	Cloud  string `json:"cloud"`
	Kind   string `json:"kind,omitempty"`
	Target string `json:"target"`
	Name   string `json:"name,omitempty"`
	Error  string `json:"error"`
}

// userAgent tells the clouds' logs who called: short, as azcore keeps 24
// characters of an application ID.
const userAgent = "jit-revoke-expired"

// parallelism bounds how many NSGs, firewalls and security groups are
// worked on at once: each takes its own writes in turn, so different ones
// proceed side by side without a retry storm on any.
const parallelism = 4

const revokeUsage = `Usage: terraform-provider-jit revoke-expired [flags]

Removes every expired JIT grant in the scanned scopes, found from the
markers the grants carry in the cloud (no Terraform state needed), and
prints a JSON summary on stdout. Safe to run again and concurrently.
Azure is scanned when a subscription is given, AWS when a region (or
profile or endpoint) is. Exit code: 0 all done, 1 something failed (the
rest was still done), 2 usage error.

Flags:
`

// RevokeExpired runs the revoke-expired command with args (those after
// the subcommand's name) and returns the exit code.
func RevokeExpired(ctx context.Context, args []string, stdout, stderr io.Writer, clock jit.Clock) int {
	cfg, code := parseRevokeFlags(args, stderr)
	if code >= 0 {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "revoke-expired: "+format+"\n", a...)
		return ExitUsage
	}
	r := &revoker{clock: clock, stderr: stderr, resourceGroup: cfg.resourceGroup}
	if cfg.subscription != "" {
		if _, ok := azure.Environments[cfg.azureEnvironment]; cfg.azureEnvironment != "" && !ok {
			return usage("-azure-environment: unknown environment %q (expected public, usgovernment or china)", cfg.azureEnvironment)
		}
		if cfg.azureEndpoint != "" {
			if _, err := endpoint.Check(cfg.azureEndpoint); err != nil {
				return usage("-azure-endpoint: %v", err)
			}
		}
		az, err := azure.New(azure.Config{
			SubscriptionID: cfg.subscription, Environment: cfg.azureEnvironment,
			ResourceManagerEndpoint: cfg.azureEndpoint, UserAgent: userAgent,
		})
		if err != nil {
			return usage("Azure configuration: %v", err)
		}
		r.azure = az
	}
	if cfg.region != "" || cfg.awsProfile != "" || cfg.awsEndpoint != "" {
		if cfg.awsEndpoint != "" {
			if _, err := endpoint.Check(cfg.awsEndpoint); err != nil {
				return usage("-aws-endpoint: %v", err)
			}
		}
		client, err := aws.New(ctx, aws.Config{Region: cfg.region, Profile: cfg.awsProfile, Endpoint: cfg.awsEndpoint, UserAgent: userAgent})
		if err != nil {
			return usage("-region / -aws-profile / -aws-endpoint: %v", err)
		}
		r.aws = client
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	summary := r.run(ctx)
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(summary); err != nil {
		fmt.Fprintf(stderr, "revoke-expired: writing the summary: %v\n", err)
		return ExitFailed
	}
	if len(summary.Errors) > 0 {
		return ExitFailed
	}
	return ExitOK
}

type revokeConfig struct {
	subscription, resourceGroup, azureEnvironment, azureEndpoint string
	region, awsProfile, awsEndpoint                              string
	timeout                                                      time.Duration
}

// parseRevokeFlags returns the configuration, and an exit code >= 0 when
// the command must stop there.
func parseRevokeFlags(args []string, stderr io.Writer) (revokeConfig, int) {
	var cfg revokeConfig
	fs := flag.NewFlagSet("revoke-expired", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, revokeUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.subscription, "subscription", os.Getenv("ARM_SUBSCRIPTION_ID"), "Azure subscription to scan (default $ARM_SUBSCRIPTION_ID); Azure is skipped without one")
	fs.StringVar(&cfg.resourceGroup, "resource-group", "", "scan only this resource group of the subscription")
	fs.StringVar(&cfg.azureEnvironment, "azure-environment", os.Getenv("ARM_ENVIRONMENT"), "Azure cloud: public, usgovernment or china (default $ARM_ENVIRONMENT, else public)")
	fs.StringVar(&cfg.azureEndpoint, "azure-endpoint", "", "Resource Manager endpoint override (plain http only on loopback)")
	fs.StringVar(&cfg.region, "region", os.Getenv("AWS_REGION"), "AWS region to scan (default $AWS_REGION); AWS is skipped without a region, profile or endpoint")
	fs.StringVar(&cfg.awsProfile, "aws-profile", "", "AWS shared configuration profile")
	fs.StringVar(&cfg.awsEndpoint, "aws-endpoint", "", "EC2 endpoint override (AWS_ENDPOINT_URL_EC2 is honoured too; plain http only on loopback)")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Minute, "give up on what is left after this long (retries included)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, ExitOK
		}
		return cfg, ExitUsage // the flag package has said which flag
	}
	fail := func(format string, a ...any) (revokeConfig, int) {
		fmt.Fprintf(stderr, "revoke-expired: "+format+"\n", a...)
		return cfg, ExitUsage
	}
	switch {
	case fs.NArg() > 0:
		return fail("unexpected argument %q: revoke-expired takes flags only", fs.Arg(0))
	case cfg.timeout <= 0:
		return fail("-timeout must be positive, not %s", cfg.timeout)
	case cfg.subscription == "" && (cfg.resourceGroup != "" || cfg.azureEndpoint != ""):
		flagName := "-resource-group"
		if cfg.resourceGroup == "" {
			flagName = "-azure-endpoint"
		}
		return fail("%s needs a subscription: set -subscription or ARM_SUBSCRIPTION_ID", flagName)
	case cfg.subscription == "" && cfg.region == "" && cfg.awsProfile == "" && cfg.awsEndpoint == "":
		return fail("nothing to scan: set -subscription (or ARM_SUBSCRIPTION_ID) for Azure, -region (or AWS_REGION) for AWS, or both")
	}
	return cfg, -1
}

// revoker is one run: the clients of the configured clouds and what was
// found and done so far.
type revoker struct {
	clock         jit.Clock
	stderr        io.Writer
	azure         *azure.Client
	aws           *aws.Client
	resourceGroup string

	mu      sync.Mutex
	summary Summary
	tasks   []func(context.Context)
}

func (r *revoker) run(ctx context.Context) Summary {
	r.summary = Summary{Now: r.clock.Now().UTC().Format(time.RFC3339), Scopes: []Scope{}, Revoked: []RevokedGrant{}, Errors: []GrantError{}}
	if r.azure != nil {
		r.summary.Scopes = append(r.summary.Scopes, Scope{Cloud: "azure", Subscription: r.azure.SubscriptionID, ResourceGroup: r.resourceGroup})
		r.scanNSGs(ctx)
		r.scanFirewalls(ctx)
	}
	if r.aws != nil {
		r.summary.Scopes = append(r.summary.Scopes, Scope{Cloud: "aws", Region: r.aws.Region})
		r.scanSecurityGroups(ctx)
	}

	work := make(chan func(context.Context))
	var wg sync.WaitGroup
	for range parallelism {
		wg.Go(func() {
			for task := range work {
				task(ctx)
			}
		})
	}
	for _, task := range r.tasks {
		work <- task
	}
	close(work)
	wg.Wait()

	s := r.summary
	slices.SortFunc(s.Revoked, func(a, b RevokedGrant) int {
		return strings.Compare(a.Cloud+"\x00"+a.Target+"\x00"+a.Name, b.Cloud+"\x00"+b.Target+"\x00"+b.Name)
	})
	slices.SortFunc(s.Errors, func(a, b GrantError) int {
		return strings.Compare(a.Cloud+"\x00"+a.Target+"\x00"+a.Name, b.Cloud+"\x00"+b.Target+"\x00"+b.Name)
	})
	return s
}

func (r *revoker) expired(end time.Time) bool {
	return jit.ExpiryStatus(end, r.clock) == jit.GrantExpired
}

func (r *revoker) revoked(g RevokedGrant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.summary.Revoked = append(r.summary.Revoked, g)
	fmt.Fprintf(r.stderr, "revoked %s %s %s in %s (ended %s, requested by %s)\n", g.Cloud, g.Kind, g.Name, g.Target, g.EndTimeUTC, g.Requestor)
}

func (r *revoker) live() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.summary.Live++
}

func (r *revoker) failed(e GrantError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.summary.Errors = append(r.summary.Errors, e)
	fmt.Fprintf(r.stderr, "error: %s %s: %s\n", e.Cloud, e.Target, e.Error)
}

func (r *revoker) azureScope() string {
	scope := "/subscriptions/" + r.azure.SubscriptionID
	if r.resourceGroup != "" {
		scope += "/resourceGroups/" + r.resourceGroup
	}
	return scope
}

// scanNSGs finds the grant rules of every NSG in scope: inbound Allow
// rules whose description is a grant marker. Each NSG with expired ones
// becomes a task.
func (r *revoker) scanNSGs(ctx context.Context) {
	nsgs, err := r.azure.NetworkSecurityGroups(ctx, r.resourceGroup)
	if err != nil {
		r.failed(GrantError{Cloud: "azure", Target: r.azureScope(), Error: err.Error()})
		return
	}
	for _, nsg := range nsgs {
		var expired []jit.NSGRule
		for _, rule := range nsg.Rules {
			m, ok := nsgGrant(rule)
			switch {
			case !ok:
			case r.expired(m.End):
				expired = append(expired, rule)
			default:
				r.live()
			}
		}
		if len(expired) > 0 {
			r.tasks = append(r.tasks, func(ctx context.Context) { r.revokeNSGRules(ctx, nsg.ID, expired) })
		}
	}
}

// nsgGrant reads the grant marker of an NSG rule, if the rule is a grant.
func nsgGrant(rule jit.NSGRule) (jit.Marker, bool) {
	if !strings.EqualFold(string(rule.Direction), string(jit.NSGInbound)) || !strings.EqualFold(string(rule.Access), string(jit.NSGAllow)) {
		return jit.Marker{}, false
	}
	m, ok := jit.ParseMarker(rule.Description)
	return m, ok && m.Kind == jit.MarkerGrant
}

func (r *revoker) revokeNSGRules(ctx context.Context, nsgID string, rules []jit.NSGRule) {
	defer r.azure.Lock(nsgID)()
	for _, rule := range rules {
		m, _ := nsgGrant(rule)
		revoked, err := r.azure.RevokeSecurityRule(ctx, nsgID, rule.Name, func(current jit.NSGRule) bool {
			m, ok := nsgGrant(current)
			return ok && r.expired(m.End)
		})
		switch {
		case err != nil:
			r.failed(GrantError{Cloud: "azure", Kind: KindNSGRule, Target: nsgID, Name: rule.Name, Error: err.Error()})
		case revoked:
			r.revoked(RevokedGrant{Cloud: "azure", Kind: KindNSGRule, Target: nsgID, Name: rule.Name, EndTimeUTC: m.End.Format(time.RFC3339), Requestor: m.Requestor})
		default: // renewed since the scan
			r.live()
		}
	}
}

// firewallGrant is a grant's pair of collections on a firewall, as scanned.
type firewallGrant struct {
	name      string
	end       time.Time
	requestor string
}

// scanFirewalls finds the grant collections of every firewall in scope.
// Each firewall with expired ones becomes a task.
func (r *revoker) scanFirewalls(ctx context.Context) {
	firewalls, err := r.azure.FirewallsRuleDescriptions(ctx, r.resourceGroup)
	if err != nil {
		r.failed(GrantError{Cloud: "azure", Target: r.azureScope(), Error: err.Error()})
		return
	}
	for _, fw := range firewalls {
		var expired []firewallGrant
		for name, descriptions := range fw.Collections {
			if !jit.IsFirewallGrantCollection(name) {
				continue
			}
			end, requestor, ok := jit.FirewallGrantEnd(descriptions)
			switch {
			case !ok:
				fmt.Fprintf(r.stderr, "warning: Azure Firewall %s: rule collection %s is named as a JIT grant but not every rule carries a grant marker; left alone\n", fw.ID, name)
			case r.expired(end):
				expired = append(expired, firewallGrant{name, end, requestor})
			default:
				r.live()
			}
		}
		if len(expired) > 0 {
			r.tasks = append(r.tasks, func(ctx context.Context) { r.revokeFirewallGrants(ctx, fw.ID, expired) })
		}
	}
}

func (r *revoker) revokeFirewallGrants(ctx context.Context, firewallID string, grants []firewallGrant) {
	defer r.azure.Lock(firewallID)()
	wanted := map[string]bool{}
	for _, g := range grants {
		wanted[g.name] = true
	}
	removed, remaining, err := r.azure.RemoveFirewallCollections(ctx, firewallID, func(name string, descriptions []string) bool {
		end, _, ok := jit.FirewallGrantEnd(descriptions)
		return wanted[name] && ok && r.expired(end)
	})
	for _, g := range grants {
		switch {
		case err != nil:
			r.failed(GrantError{Cloud: "azure", Kind: KindFirewallGrant, Target: firewallID, Name: g.name, Error: err.Error()})
		case slices.Contains(removed, g.name) || !slices.Contains(remaining, g.name): // removed now, or already gone
			r.revoked(RevokedGrant{Cloud: "azure", Kind: KindFirewallGrant, Target: firewallID, Name: g.name, EndTimeUTC: g.end.Format(time.RFC3339), Requestor: g.requestor})
		default: // renewed since the scan
			r.live()
		}
	}
}

// scanSecurityGroups finds the region's grant security groups; each
// expired one becomes a task.
func (r *revoker) scanSecurityGroups(ctx context.Context) {
	groups, err := r.aws.GrantGroups(ctx)
	if err != nil {
		r.failed(GrantError{Cloud: "aws", Target: r.aws.Region, Error: err.Error()})
		return
	}
	for _, g := range groups {
		switch {
		case !g.MarkerOK:
			fmt.Fprintf(r.stderr, "warning: security group %s carries a %s tag that is not a grant marker; left alone\n", g.ID, jit.TagGrant)
		case r.expired(g.Marker.End):
			r.tasks = append(r.tasks, func(ctx context.Context) { r.revokeSecurityGroup(ctx, g) })
		default:
			r.live()
		}
	}
}

func (r *revoker) revokeSecurityGroup(ctx context.Context, g aws.GrantGroup) {
	revoked, err := r.aws.RevokeGrantGroup(ctx, g.ID, func(m jit.Marker) bool { return r.expired(m.End) })
	switch {
	case err != nil:
		r.failed(GrantError{Cloud: "aws", Kind: KindSecurityGroup, Target: g.ID, Name: g.Name, Error: err.Error()})
	case revoked:
		r.revoked(RevokedGrant{Cloud: "aws", Kind: KindSecurityGroup, Target: g.ID, Name: g.Name,
			EndTimeUTC: g.Marker.End.Format(time.RFC3339), Requestor: g.Marker.Requestor, Request: g.RequestID})
	default:
		r.live()
	}
}
