package cloudsim

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// ARM lists come in pages joined by nextLink; a client that reads only the
// first page misses resources. With one resource per page, the SDK's pagers
// must follow every link to see them all, in the emulator's order.
func TestAzureListPagesFollowNextLink(t *testing.T) {
	w := newAzureWorld(t, Options{ListPageSize: 1})
	ctx := t.Context()

	var nsgs []string
	pages := 0
	for pager := w.net.NewSecurityGroupsClient().NewListAllPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Value) != 1 {
			t.Fatalf("page %d holds %d NSGs, want 1", pages, len(page.Value))
		}
		if last := page.NextLink == nil; last != (len(nsgs) == 2) {
			t.Fatalf("page %d: nextLink %v after %d NSGs", pages, page.NextLink, len(nsgs))
		}
		nsgs = append(nsgs, *page.Value[0].ID)
	}
	want := []string{azWebNSG, azSubnetNSG, azProd + "Microsoft.Network/networkSecurityGroups/db-nsg"}
	if !slices.Equal(nsgs, want) {
		t.Fatalf("NSGs listed: %v\nwant %v", nsgs, want)
	}
	if n := w.Calls()["SecurityGroups.ListAll"]; n != 3 {
		t.Errorf("SecurityGroups.ListAll called %d times, want one per page (3)", n)
	}

	var firewalls []string
	for pager := w.net.NewAzureFirewallsClient().NewListPager("rg-hub", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, fw := range page.Value {
			firewalls = append(firewalls, *fw.ID)
		}
	}
	if !slices.Equal(firewalls, []string{azHubFW, azManagedFW}) {
		t.Fatalf("firewalls in rg-hub: %v", firewalls)
	}
}

// Without a page size in the options, a small world fits one page.
func TestAzureListDefaultPageHoldsSmallWorld(t *testing.T) {
	w := newAzureWorld(t, Options{})
	page, err := w.net.NewSecurityGroupsClient().NewListPager("rg-prod", nil).NextPage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Value) != 3 || page.NextLink != nil {
		t.Fatalf("one page of %d NSGs, nextLink %v; want all 3 and no nextLink", len(page.Value), page.NextLink)
	}
}

func TestAzureListRejectsForgedSkipToken(t *testing.T) {
	w := newAzureWorld(t, Options{ListPageSize: 1})
	req, err := http.NewRequest(http.MethodGet, w.URL+"/subscriptions/"+azSub+"/providers/Microsoft.Network/networkSecurityGroups?api-version="+azAPIVersion+"&$skipToken=bm9wZQ", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := w.cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{armAudience + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"InvalidSkipToken"`) {
		t.Fatalf("forged skip token: %d %s", resp.StatusCode, body)
	}
}
