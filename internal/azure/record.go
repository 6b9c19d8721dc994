package azure

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// An Azure grant's record (jit.GrantRecord: requestor, on-behalf-of and
// justification, whole) is its rules' marker, which holds requestor and
// justification when they fit its 140 bytes, and tags of the granted VM
// for the rest: jit-record-<request>-on-behalf-of when someone is acted
// for, -requestor and -justification when the marker shortens them
// (jit.GrantRecord.TagsBeside). A request with a short requestor and
// justification made for nobody else takes no tag at all.
//
// Why the VM's tags, and not elsewhere:
//   - A security rule has no other free-text field, and its description is
//     capped at 140 characters.
//   - The NSGs' tags: a grant has rules in every NSG on the path and on the
//     firewall, so the record would be copied into each; a subnet NSG
//     holds the grants of every VM behind it, and 50 tags per resource
//     would cap the requests open at once on a whole subnet.
//   - On the VM, a request's record is written once, whatever its path,
//     and only that VM's open requests share its 50 tags (each takes none
//     to three, one or two typically). The VM is also what an auditor asks
//     about, and audit lists VMs anyway: the record costs no extra read.
//   - The tags are written through the Tags API (PATCH
//     …/providers/Microsoft.Resources/tags/default, "Merge" and "Delete"),
//     which needs Microsoft.Resources/tags/write only. A requester never
//     needs Microsoft.Compute/virtualMachines/write, which would let it
//     add extensions and run code on the VM; and ARM merges on its side, so
//     concurrent requests from other processes never drop each other's
//     record, where a VM PATCH would replace the whole tag map.
//
// A request's record is written before its first rule, so no grant of
// this provider is ever without one; it is removed once the request is
// closed, and revoke-expired removes the record of a request that can no
// longer be open and has no rule left.

// maxTags is ARM's limit of tags per resource.
const maxTags = 50

// recordSeats counts the VM tags that requests planned by this provider
// process will take with their records, until each is written. Terraform
// plans every resource of a configuration in one process, so fifty
// requests for one VM see each other: the one that would pass the VM's
// 50 tags fails its plan, where each alone, checked against the VM's tags,
// would pass and the apply would fail.
type recordSeats struct {
	mu sync.Mutex
	// byVM holds, per VM (lower-cased ID), the tags each planned request
	// needs, by requestKey.
	byVM map[string]map[string]int
}

// requestKey names a request the same way at plan (no ID, no requestor
// known for sure) and when its grant is opened.
func requestKey(g engine.Grant) string {
	parts := []string{g.Policy, g.OnBehalfOf, g.Justification}
	for _, p := range g.Ports {
		parts = append(parts, fmt.Sprintf("%d/%s/%s", p.Port.Number, p.Port.Protocol, p.Source))
	}
	return strings.Join(parts, "\x00")
}

// take reserves need tags on vm for the request key, unless the VM's
// current tags, the other planned requests' and need pass maxTags; it
// returns how many the others take.
func (s *recordSeats) take(vm, key string, current, need int) (others int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vm = strings.ToLower(vm)
	for k, n := range s.byVM[vm] {
		if k != key {
			others += n
		}
	}
	if current+others+need > maxTags {
		return others, false
	}
	if s.byVM == nil {
		s.byVM = map[string]map[string]int{}
	}
	if s.byVM[vm] == nil {
		s.byVM[vm] = map[string]int{}
	}
	s.byVM[vm][key] = need
	return others, true
}

// release frees a request's seats once its record is written, or failed to be.
func (s *recordSeats) release(vm, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byVM[strings.ToLower(vm)], key)
}

// tagsAPIVersion is the Tags API version whose PATCH answers synchronously.
const tagsAPIVersion = "2021-04-01"

// MergeTags adds or replaces tags of a resource, keeping the others.
func (c *Client) MergeTags(ctx context.Context, resourceID string, set map[string]string) error {
	if len(set) == 0 {
		return nil
	}
	tflog.Info(ctx, "writing tags through the Tags API", map[string]any{"resource": resourceID, "tags": len(set)})
	return c.patchTags(ctx, resourceID, "Merge", set)
}

// DeleteTags removes tags of a resource, each only while it still has
// the value given (a tag rewritten meanwhile is kept).
func (c *Client) DeleteTags(ctx context.Context, resourceID string, remove map[string]string) error {
	if len(remove) == 0 {
		return nil
	}
	tflog.Info(ctx, "removing tags through the Tags API", map[string]any{"resource": resourceID, "tags": len(remove)})
	return c.patchTags(ctx, resourceID, "Delete", remove)
}

func (c *Client) patchTags(ctx context.Context, resourceID, operation string, tags map[string]string) error {
	client, err := c.tagsClient()
	if err != nil {
		return err
	}
	var after map[string]string // the resource's tags, as the answer gives them
	err = withRetry(ctx, func(ctx context.Context) error {
		after = nil
		req, err := runtime.NewRequest(ctx, http.MethodPatch, runtime.JoinPaths(client.Endpoint(), resourceID, "/providers/Microsoft.Resources/tags/default"))
		if err != nil {
			return err
		}
		q := req.Raw().URL.Query()
		q.Set("api-version", tagsAPIVersion)
		req.Raw().URL.RawQuery = q.Encode()
		req.Raw().Header.Set("Accept", "application/json")
		body := map[string]any{"operation": operation, "properties": map[string]any{"tags": maps.Clone(tags)}}
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			return err
		}
		resp, err := client.Pipeline().Do(req)
		if err != nil {
			return err
		}
		if !runtime.HasStatusCode(resp, http.StatusOK) {
			return runtime.NewResponseError(resp)
		}
		var answer struct {
			Properties struct {
				Tags map[string]string `json:"tags"`
			} `json:"properties"`
		}
		if runtime.UnmarshalAsJSON(resp, &answer) == nil && answer.Properties.Tags != nil {
			after = answer.Properties.Tags
		}
		return nil
	})
	if err != nil || after == nil {
		// What the write did is not known: what this process read of the
		// resource is read again.
		c.vms.Forget(resourceID)
	} else {
		// The answer holds the resource's tags. Its ETag moved too, and
		// stays as read: a conditional write of the VM meets 412 and reads
		// it again (UpdateMachineTags), where requests planned together
		// would each read the VM again after the others' records.
		c.vms.Update(resourceID, func(r vmRecord) vmRecord {
			r.Tags = after
			return r
		})
	}
	if err != nil {
		return fmt.Errorf("writing tags of %s: %w", resourceID, notFound(err))
	}
	return nil
}

func (c *Client) tagsClient() (*arm.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tags == nil {
		client, err := arm.NewClient("jit/tags", "v1.0.0", c.cred, c.options)
		if err != nil {
			return nil, err
		}
		c.tags = client
	}
	return c.tags, nil
}

// recordTags are the tags of a grant's record on its VM: what its marker
// cannot hold whole (jit.GrantRecord.TagsBeside). Every port's marker has
// the same room for requestor and justification, whatever its end.
func recordTags(g engine.Grant) map[string]string {
	var end time.Time
	if len(g.Ports) > 0 {
		end = g.Ports[0].End
	}
	return g.Record().TagsBeside(jit.GrantMarker(g.Policy, end, g.Requestor, g.Justification), jit.RecordTagPrefix(g.ID))
}

// writeRecord writes a grant's record to its VM unless the VM's tags, as
// read for this request, already hold it; a VM without room for it is
// an error before anything is written.
func (c *Client) writeRecord(ctx context.Context, m *jit.Machine, g engine.Grant) error {
	// The seats the plan reserved are the record's once written, and no
	// one's once writing it failed: either way they are free again.
	defer c.seats.release(m.ID, requestKey(g))
	set := map[string]string{}
	for name, value := range recordTags(g) {
		if m.Tags[name] != value {
			set[name] = value
		}
	}
	added := 0
	for name := range set {
		if _, ok := m.Tags[name]; !ok {
			added++
		}
	}
	if len(m.Tags)+added > maxTags {
		return fmt.Errorf("virtual machine %s carries %d tags and request %s records who asked and why in %d more, past Azure's %d per resource: "+
			"remove tags the VM does not need, or let older requests end (revoke-expired removes their records)", m.ID, len(m.Tags), g.ID, added, maxTags)
	}
	if err := c.MergeTags(ctx, m.ID, set); err != nil {
		return fmt.Errorf("recording who asked for request %s on virtual machine %s: %w", g.ID, m.ID, err)
	}
	if m.Tags == nil {
		m.Tags = map[string]string{}
	}
	maps.Copy(m.Tags, set)
	return nil
}

// machineRecord is a request's record from one of its rules' marker and
// the VM's tags, and whether it is whole; nil without a grant marker.
func machineRecord(m *jit.Machine, request, description string) (*jit.GrantRecord, bool) {
	marker, ok := jit.ParseMarker(description)
	if !ok || marker.Kind != jit.MarkerGrant {
		return nil, false
	}
	var tags map[string]string
	if m != nil && request != "" {
		tags = m.Tags
	}
	r, whole := jit.RecordOf(marker, tags, jit.RecordTagPrefix(request))
	return &r, whole
}

// wholeRecord is machineRecord when whole, else nil.
func wholeRecord(m *jit.Machine, request, description string) *jit.GrantRecord {
	if r, whole := machineRecord(m, request, description); whole {
		return r
	}
	return nil
}

// removeRecord removes a request's record from its VM, as tags holds it.
func (c *Client) removeRecord(ctx context.Context, vmID string, tags map[string]string, request string) error {
	remove := map[string]string{}
	for name, value := range tags {
		if jit.IsRecordTagOf(name, request) {
			remove[name] = value
		}
	}
	return c.DeleteTags(ctx, vmID, remove)
}
