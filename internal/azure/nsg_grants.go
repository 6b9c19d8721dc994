package azure

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// NSG is a network security group and its security rules.
type NSG struct {
	ID    string
	Rules []jit.NSGRule
}

// NetworkSecurityGroups lists, with their rules, the NSGs of the configured
// subscription, or of one of its resource groups when resourceGroup is set:
// what a scan for grants reads, one list call per page whatever the number
// of NSGs.
func (c *Client) NetworkSecurityGroups(ctx context.Context, resourceGroup string) ([]NSG, error) {
	scope, err := c.scanScope(resourceGroup)
	if err != nil {
		return nil, err
	}
	network, err := c.networkClients(c.SubscriptionID)
	if err != nil {
		return nil, err
	}
	client := network.NewSecurityGroupsClient()
	var out []NSG
	add := func(values []*armnetwork.SecurityGroup) {
		for _, nsg := range values {
			if nsg == nil || nsg.ID == nil {
				continue
			}
			n := NSG{ID: *nsg.ID, Rules: rulesOf(nsg)}
			c.nsgs.Put(n.ID, n.Rules)
			out = append(out, n)
		}
	}
	if resourceGroup == "" {
		err = list(ctx, func() *runtime.Pager[armnetwork.SecurityGroupsClientListAllResponse] {
			return client.NewListAllPager(nil)
		},
			func(page armnetwork.SecurityGroupsClientListAllResponse) { add(page.Value) })
	} else {
		err = list(ctx, func() *runtime.Pager[armnetwork.SecurityGroupsClientListResponse] {
			return client.NewListPager(resourceGroup, nil)
		},
			func(page armnetwork.SecurityGroupsClientListResponse) { add(page.Value) })
	}
	if err != nil {
		return nil, fmt.Errorf("listing network security groups of %s: %w", scope, notFound(err))
	}
	return out, nil
}

// RevokeSecurityRule deletes the named rule from an NSG through the
// security-rules API, if the rule, read again right before the delete,
// still satisfies revoke: a grant renewed since it was listed is kept
// (revoked false). A rule already gone counts as revoked, so a second run
// or a concurrent one converges. Throttling and another operation in
// progress on the NSG are retried. The caller holds the NSG's lock.
func (c *Client) RevokeSecurityRule(ctx context.Context, nsgID, name string, revoke func(jit.NSGRule) bool) (revoked bool, err error) {
	id, network, err := c.parseNetworkID(nsgID)
	if err != nil {
		return false, err
	}
	rules := network.NewSecurityRulesClient()
	var current *armnetwork.SecurityRule
	err = withRetry(ctx, func(ctx context.Context) error {
		resp, err := rules.Get(ctx, id.ResourceGroupName, id.Name, name, nil)
		if err != nil {
			return err
		}
		current = &resp.SecurityRule
		return nil
	})
	switch {
	case isNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading rule %s of network security group %s: %w", name, nsgID, err)
	case !revoke(fromSecurityRule(current)):
		return false, nil
	}
	tflog.Info(ctx, "deleting expired grant rule", map[string]any{"nsg": nsgID, "rule": name})
	err = withRetry(ctx, func(ctx context.Context) error {
		var initial *http.Response
		poller, err := rules.BeginDelete(policy.WithCaptureResponse(ctx, &initial), id.ResourceGroupName, id.Name, name, nil)
		if err != nil {
			return err
		}
		return await(ctx, poller, initial)
	})
	if err != nil && !isNotFound(err) {
		c.nsgs.Forget(nsgID)
		return false, fmt.Errorf("deleting rule %s from network security group %s: %w", name, nsgID, err)
	}
	c.nsgs.Update(nsgID, func(have []jit.NSGRule) []jit.NSGRule { return withoutRule(have, name) })
	return true, nil
}

// scanScope names the subscription or resource group a scan covers, and
// refuses a scan without a subscription.
func (c *Client) scanScope(resourceGroup string) (string, error) {
	if c.SubscriptionID == "" {
		return "", fmt.Errorf("scanning for grants needs a subscription: set ARM_SUBSCRIPTION_ID or the subscription_id")
	}
	scope := "subscription " + c.SubscriptionID
	if resourceGroup != "" {
		scope = "resource group " + resourceGroup + " of " + scope
	}
	return scope, nil
}
