package cloudsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
)

// armError is ARM's error body: {"error":{"code","message","details"}}.
type armError struct {
	status  int
	header  http.Header
	Code    string     `json:"code"`
	Message string     `json:"message"`
	Details []armError `json:"details,omitempty"`
}

func newARMError(status int, code, format string, args ...any) *armError {
	return &armError{status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *armError) reply() armReply {
	return armReply{status: e.status, header: e.header, body: struct {
		Error *armError `json:"error"`
	}{e}}
}

// writeARMError renders injected faults and front-door errors.
func writeARMError(w http.ResponseWriter, status int, code, message string) {
	writeARMReply(w, newARMError(status, code, "%s", message).reply())
}

// armReply is a handler's answer, built under the lock and written after.
type armReply struct {
	status int
	header http.Header
	body   any // nil: no body
}

func writeARMReply(w http.ResponseWriter, rep armReply) {
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return
	}
	writeJSON(w, rep.status, rep.body)
}

func ok(body any) armReply { return armReply{status: http.StatusOK, body: body} }

// armCall is one routed ARM request.
type armCall struct {
	sim        *Sim
	a          *azureState
	r          *http.Request
	op         string // the operation name, as Operations() lists it
	now        time.Time
	path       string   // the request path, which is also the addressed resource's ID
	sub, group string   // group is empty for subscription-level routes
	args       []string // the {placeholders} of the route, in order
	body       []byte
}

// key is the lower-cased ID of the addressed resource.
func (c *armCall) key() string { return strings.ToLower(c.path) }

// parentPath drops the last n name/type segment pairs of the path.
func (c *armCall) parentPath(n int) string {
	segs := strings.Split(c.path, "/")
	return strings.Join(segs[:len(segs)-2*n], "/")
}

// armRoute maps a method and a path below /subscriptions/{sub}/ to an
// operation named after the Go SDK's client method.
type armRoute struct {
	method, pattern, op string
	handle              func(c *armCall) armReply
}

// armKind is a top-level resource type served read-only by generic
// handlers: Get, and List/ListAll when lists is set.
type armKind struct {
	client, typ string // SDK client name and ARM type, e.g. "SecurityGroups", nsgType
	lists       bool
	render      func(a *azureState, key string) (any, bool)
	// is tells, without rendering it, whether key is of this kind.
	is func(a *azureState, key string) bool
}

var armKinds = []armKind{
	{"VirtualMachines", vmType, true, renderAs((*azureState).renderVM), isA[*AzureVM]},
	{"Interfaces", nicType, true, renderAs((*azureState).renderNIC), isA[*AzureNIC]},
	{"VirtualNetworks", vnetType, true, renderAs((*azureState).renderVNet), isA[*AzureVNet]},
	{"SecurityGroups", nsgType, true, renderAs((*azureState).renderNSG), isA[*AzureNSG]},
	{"PublicIPAddresses", publicIPType, false, renderAs((*azureState).renderPublicIP), isA[*AzurePublicIP]},
	{"AzureFirewalls", firewallType, true, renderAs((*azureState).renderFirewall), isA[*AzureFirewall]},
	{"FirewallPolicies", policyType, false, renderAs((*azureState).renderFirewallPolicy), isA[*AzureFirewallPolicy]},
	{"ApplicationSecurityGroups", asgType, false, renderAs((*azureState).renderASG), isA[*AzureApplicationSecurityGroup]},
}

func isA[T any](a *azureState, key string) bool {
	_, ok := a.res[key].(T)
	return ok
}

func renderAs[T any](render func(*azureState, T) obj) func(*azureState, string) (any, bool) {
	return func(a *azureState, key string) (any, bool) {
		r, ok := a.res[key].(T)
		if !ok {
			return nil, false
		}
		return render(a, r), true
	}
}

const (
	rgPrefix             = "resourceGroups/{rg}/providers/"
	nsgPath              = rgPrefix + "Microsoft.Network/networkSecurityGroups/{nsg}"
	firewallPath         = rgPrefix + "Microsoft.Network/azureFirewalls/{name}"
	vmPath               = rgPrefix + "Microsoft.Compute/virtualMachines/{name}"
	networkOperationPath = "providers/Microsoft.Network/locations/{location}/"
	computeOperationPath = "providers/Microsoft.Compute/locations/{location}/"
)

var armRoutes = buildARMRoutes()

// armOperations lists every operation name the ARM side serves.
var armOperations = func() []string {
	ops := []string{"ManagedIdentity.GetToken"}
	for _, r := range armRoutes {
		ops = append(ops, r.op)
	}
	slices.Sort(ops)
	return slices.Compact(ops)
}()

func buildARMRoutes() []armRoute {
	routes := []armRoute{
		{"PATCH", vmPath, "VirtualMachines.Update", updateVM},
		{"DELETE", vmPath, "VirtualMachines.Delete", deleteVM},
		{"PATCH", vmPath + tagsAtScopePath, "Tags.UpdateAtScope", updateTagsAtScope},
		{"GET", rgPrefix + "Microsoft.Network/virtualNetworks/{vnet}/subnets/{name}", "Subnets.Get", getSubnet},
		{"GET", nsgPath + "/securityRules", "SecurityRules.List", listSecurityRules},
		{"GET", nsgPath + "/securityRules/{name}", "SecurityRules.Get", getSecurityRule},
		{"PUT", nsgPath + "/securityRules/{name}", "SecurityRules.CreateOrUpdate", putSecurityRule},
		{"DELETE", nsgPath + "/securityRules/{name}", "SecurityRules.Delete", deleteSecurityRule},
		{"PUT", firewallPath, "AzureFirewalls.CreateOrUpdate", putFirewall},
		// Operations are named per resource provider, as Azure RBAC
		// authorises them (Microsoft.Network/locations/operations/read, …).
		{"GET", networkOperationPath + "operations/{id}", "NetworkOperations.Get", getOperationStatus},
		{"GET", networkOperationPath + "operationResults/{id}", "NetworkOperationResults.Get", getOperationResult},
		{"GET", computeOperationPath + "operations/{id}", "ComputeOperations.Get", getOperationStatus},
		{"GET", computeOperationPath + "operationResults/{id}", "ComputeOperationResults.Get", getOperationResult},
	}
	for _, k := range armKinds {
		routes = append(routes, armRoute{"GET", rgPrefix + k.typ + "/{name}", k.client + ".Get", func(c *armCall) armReply {
			if body, found := k.render(c.a, c.key()); found {
				return ok(body)
			}
			return c.resourceNotFound(k.typ, c.args[1]).reply()
		}})
		if k.lists {
			list := func(c *armCall) armReply { return armList(c, k) }
			routes = append(routes,
				armRoute{"GET", rgPrefix + k.typ, k.client + ".List", list},
				armRoute{"GET", "providers/" + k.typ, k.client + ".ListAll", list})
		}
	}
	return routes
}

// armList renders one page of the resources of kind k whose ID lies under
// the listed scope (a resource group or a subscription). As ARM does, a
// page that is not the last carries a nextLink: the same list's absolute
// URL, api-version included, with an opaque $skipToken, which the SDKs'
// pagers follow as given.
func armList(c *armCall, k armKind) armReply {
	scope := strings.ToLower(c.path[:len(c.path)-len("/providers/"+k.typ)]) + "/"
	// Only the page's resources are rendered: rendering every resource
	// of a large scope for each page made listings quadratic.
	var all []string
	for _, id := range c.a.order {
		key := strings.ToLower(id)
		if strings.HasPrefix(key, scope) && k.is(c.a, key) {
			all = append(all, key)
		}
	}
	start := 0
	if tok := c.r.URL.Query().Get("$skipToken"); tok != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(tok)
		n, serr := strconv.Atoi(strings.TrimPrefix(string(raw), "cloudsim-offset-"))
		if derr != nil || serr != nil || n < 0 || n > len(all) {
			return newARMError(http.StatusBadRequest, "InvalidSkipToken", "The skip token '%s' is not valid.", tok).reply()
		}
		start = n
	}
	end := min(start+c.sim.listPageSize(), len(all))
	values := []any{}
	for _, key := range all[start:end] {
		if body, found := k.render(c.a, key); found {
			values = append(values, body)
		}
	}
	page := obj{"value": values}
	if end < len(all) {
		q := url.Values{}
		q.Set("api-version", c.r.URL.Query().Get("api-version"))
		q.Set("$skipToken", base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "cloudsim-offset-%d", end)))
		page["nextLink"] = (&url.URL{Scheme: "http", Host: c.r.Host, Path: c.path, RawQuery: q.Encode()}).String()
	}
	return ok(page)
}

// serveARM routes an ARM request. Authentication, subscription and
// resource-group checks happen inside the operation, so they are counted
// and faults apply to them like to the rest of the call.
func (s *Sim) serveARM(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimRight(r.URL.Path, "/")
	segs := strings.Split(path, "/")[1:] // "subscriptions", sub, rest…
	if len(segs) < 2 || segs[1] == "" {
		writeARMError(w, http.StatusNotFound, "InvalidResourceType", "cloudsim does not emulate "+path)
		return
	}
	route, args, pathKnown := matchARMRoute(r.Method, segs[2:])
	if route == nil {
		status, code := http.StatusNotFound, "InvalidResourceType"
		if pathKnown {
			status, code = http.StatusMethodNotAllowed, "MethodNotAllowed"
		}
		writeARMError(w, status, code, fmt.Sprintf("cloudsim does not emulate %s %s (the provider must not need it)", r.Method, path))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	// OnCall hooks may read the body too (a rule's priority, say).
	r.Body = io.NopCloser(bytes.NewReader(body))
	if r.Method == http.MethodGet && strings.HasSuffix(route.op, ".Get") && !strings.Contains(route.op, "Operation") {
		s.countRead(strings.ToLower(path))
	}
	s.handle(w, r, route.op, writeARMError, func(w http.ResponseWriter) {
		c := &armCall{sim: s, r: r, op: route.op, path: path, sub: segs[1], args: args, body: body}
		if strings.HasPrefix(route.pattern, "resourceGroups/") {
			c.group = args[0]
		}
		var rep armReply
		if e := checkBearer(r, s.azure.tenant); e != nil {
			rep = e.reply()
		} else {
			s.mu.Lock()
			rep = s.runARM(c, route)
			s.mu.Unlock()
		}
		writeARMReply(w, rep)
	})
}

// runARM applies ARM's front-door checks, throttling included, and runs
// the handler. Called with s.mu held.
func (s *Sim) runARM(c *armCall, route *armRoute) armReply {
	c.a, c.now = s.azure, time.Now()
	c.a.settle(c.now)
	switch {
	case c.r.URL.Query().Get("api-version") == "":
		return newARMError(http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.").reply()
	case !c.a.subscriptions[strings.ToLower(c.sub)]:
		return newARMError(http.StatusNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", c.sub).reply()
	}
	remaining := http.Header{}
	if e := c.throttle(remaining); e != nil {
		return e.reply()
	}
	var rep armReply
	if c.group != "" && !c.a.groups[groupKey(c.sub, c.group)] {
		rep = newARMError(http.StatusNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", c.group).reply()
	} else {
		rep = route.handle(c)
	}
	if rep.header == nil {
		rep.header = http.Header{}
	}
	for k, v := range remaining {
		rep.header[k] = v
	}
	return rep
}

// matchARMRoute finds the route for a method and the path segments after
// the subscription. pathKnown reports a path served for other methods.
func matchARMRoute(method string, segs []string) (route *armRoute, args []string, pathKnown bool) {
	for i := range armRoutes {
		if args, matched := matchPattern(armRoutes[i].pattern, segs); matched {
			if armRoutes[i].method == method {
				return &armRoutes[i], args, true
			}
			pathKnown = true
		}
	}
	return nil, nil, pathKnown
}

// matchPattern matches path segments against a route pattern, ignoring
// case as ARM does, and returns the {placeholder} values.
func matchPattern(pattern string, segs []string) ([]string, bool) {
	parts := strings.Split(pattern, "/")
	if len(parts) != len(segs) {
		return nil, false
	}
	var args []string
	for i, p := range parts {
		if strings.HasPrefix(p, "{") {
			args = append(args, segs[i])
		} else if !strings.EqualFold(p, segs[i]) {
			return nil, false
		}
	}
	return args, true
}

// resourceNotFound is ARM's answer for a missing top-level resource.
func (c *armCall) resourceNotFound(typ, name string) *armError {
	return newARMError(http.StatusNotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
		typ, name, c.group)
}

// childNotFound is the network provider's answer for a missing child
// resource (subnet, security rule) of an existing parent.
func (c *armCall) childNotFound() *armError {
	return newARMError(http.StatusNotFound, "NotFound", "Resource %s not found.", c.path)
}

// decodeBody reads a JSON request body as the network provider does.
func (c *armCall) decodeBody(v any) *armError {
	if err := json.Unmarshal(c.body, v); err != nil {
		e := newARMError(http.StatusBadRequest, "InvalidRequestFormat", "Cannot parse the request.")
		e.Details = []armError{{Code: "InvalidJson", Message: err.Error()}}
		return e
	}
	return nil
}

// checkIfMatch applies an If-Match header to a write of the network
// resource id as the network provider does (which the SDK's options do not
// offer, but a client can send): "*" needs the resource to exist, any other
// value must be its current ETag.
func (c *armCall) checkIfMatch(id string, exists bool) *armError {
	m := c.r.Header.Get("If-Match")
	current := ""
	if exists {
		current = c.a.etag(id)
	}
	if m == "" || (exists && (m == "*" || m == current)) {
		return nil
	}
	e := newARMError(http.StatusPreconditionFailed, "PreconditionFailed", "Precondition failed.")
	e.Details = []armError{{Code: "PreconditionFailedEtagMismatch", Message: fmt.Sprintf(
		"Etag provided in if-match header %s does not match etag %s of resource %s in NRP data store.", m, current, id)}}
	return e
}

// armRef is a reference to another resource: {"id": …}.
type armRef struct {
	ID string `json:"id"`
}

func refID(r *armRef) string {
	if r == nil {
		return ""
	}
	return r.ID
}

// refIDs are the IDs of a list of references.
func refIDs(list []armRef) []string {
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	return ids
}

// refs are references to the given IDs.
func refs(ids []string) []armRef {
	out := make([]armRef, len(ids))
	for i, id := range ids {
		out[i] = armRef{id}
	}
	return out
}

// nameOf is the last segment of an ID.
func nameOf(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// ARM's limits on the tags of a resource, whatever its type.
const (
	maxARMTags        = 50
	maxARMTagNameLen  = 512
	maxARMTagValueLen = 256
)

// armTagNameReserved are the characters ARM refuses in tag names, beside
// control characters.
const armTagNameReserved = `<>%&\?/`

// validateARMTags checks the tags of a PUT or PATCH as ARM's front door
// does, before the resource provider sees the request. Lengths are counted
// in UTF-16 code units, as .NET strings are.
func validateARMTags(tags map[string]string) *armError {
	if len(tags) > maxARMTags {
		return newARMError(http.StatusBadRequest, "InvalidTags",
			"Too many tags specified. Requested tag count - '%d'. Maximum number of tags allowed - '%d'.", len(tags), maxARMTags)
	}
	var reserved, longNames, longValues []string
	for name, value := range tags {
		switch {
		case strings.TrimSpace(name) == "":
			return newARMError(http.StatusBadRequest, "InvalidTagName",
				"The tag name must be non-null, non-empty and non-whitespace only. Please provide an actual value.")
		case strings.ContainsAny(name, armTagNameReserved) || strings.ContainsFunc(name, unicode.IsControl):
			reserved = append(reserved, name)
		case utf16Len(name) > maxARMTagNameLen:
			longNames = append(longNames, name)
		}
		if utf16Len(value) > maxARMTagValueLen {
			longValues = append(longValues, value)
		}
	}
	slices.Sort(reserved)
	slices.Sort(longNames)
	slices.Sort(longValues)
	switch {
	case len(reserved) > 0:
		return newARMError(http.StatusBadRequest, "InvalidTagNameCharacters",
			"The tag names '%s' have reserved characters '<,>,%%,&,\\,?,/' or control characters.", strings.Join(reserved, ", "))
	case len(longNames) > 0:
		return newARMError(http.StatusBadRequest, "InvalidTagName",
			"Tag key too large. Following tag name '%s' exceeded the maximum length. Maximum allowed length for tag name - '%d' characters.",
			strings.Join(longNames, ", "), maxARMTagNameLen)
	case len(longValues) > 0:
		return newARMError(http.StatusBadRequest, "InvalidTagValueLength",
			"Tag value too large. Following tag value '%s' exceeded the maximum length. Maximum allowed length for tag value - '%d' characters.",
			strings.Join(longValues, ", "), maxARMTagValueLen)
	}
	return nil
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

func tagsOrNil(tags map[string]string) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	return tags
}
