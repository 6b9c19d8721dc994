package cloudsim

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The AWS query protocol: form-encoded POSTs naming an Action and a Version,
// answered in XML. EC2 and STS share it, and are told apart by the service of
// the SigV4 credential scope (or, unsigned, by the API version).

const (
	ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
	stsVersion   = "2011-06-15"
)

// ec2Handler runs one EC2 action with Sim.mu held. The result is a pointer to
// a struct embedding ec2Meta, rendered as <ActionResponse>.
type ec2Handler func(a *awsState, p awsParams) (any, *awsError)

var ec2Handlers = map[string]ec2Handler{
	"DescribeInstances":               (*awsState).describeInstances,
	"TerminateInstances":              (*awsState).terminateInstances,
	"DescribeNetworkInterfaces":       (*awsState).describeNetworkInterfaces,
	"ModifyNetworkInterfaceAttribute": (*awsState).modifyNetworkInterfaceAttribute,
	"DescribeSecurityGroups":          (*awsState).describeSecurityGroups,
	"DescribeSecurityGroupRules":      (*awsState).describeSecurityGroupRules,
	"CreateSecurityGroup":             (*awsState).createSecurityGroup,
	"DeleteSecurityGroup":             (*awsState).deleteSecurityGroup,
	"AuthorizeSecurityGroupIngress":   (*awsState).authorizeSecurityGroupIngress,
	"RevokeSecurityGroupIngress":      (*awsState).revokeSecurityGroupIngress,
	"CreateTags":                      (*awsState).createTags,
	"DeleteTags":                      (*awsState).deleteTags,
}

var awsOperations = func() []string {
	ops := []string{"GetCallerIdentity"}
	for op := range ec2Handlers {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}()

// awsError is an error as the cloud reports it.
type awsError struct {
	status    int
	code, msg string
}

func (e *awsError) Error() string { return e.code + ": " + e.msg }

// ec2ClientError is a 400 with an EC2 error code.
func ec2ClientError(code, format string, args ...any) *awsError {
	return &awsError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

func ec2MissingParameter(name string) *awsError {
	return ec2ClientError("MissingParameter", "The request must contain the parameter %s", name)
}

// ec2Meta is embedded first in every EC2 response body.
type ec2Meta struct {
	RequestID string `xml:"requestId"`
}

func (s *Sim) serveAWSQuery(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.writeEC2Error(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	p := awsParams(r.PostForm)
	action := p.get("Action")
	region, service, signed := sigV4Scope(r.Header.Get("Authorization"))
	if service == "sts" || (service == "" && p.get("Version") == stsVersion) {
		s.serveSTS(w, r, action, signed)
		return
	}
	if action == "" {
		s.writeEC2Error(w, http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action")
		return
	}
	s.countRead(p.describedIDs(action)...)
	s.handle(w, r, action, s.writeEC2Error, func(w http.ResponseWriter) {
		h, ok := ec2Handlers[action]
		switch {
		case !ok:
			s.writeEC2Error(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action))
		case !signed:
			s.writeEC2Error(w, http.StatusUnauthorized, "MissingAuthenticationToken", "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.")
		case region != s.aws.region():
			// Each region is its own endpoint; this emulator is one region.
			s.writeEC2Error(w, http.StatusUnauthorized, "AuthFailure", fmt.Sprintf("Credential should be scoped to a valid region, not '%s'. This endpoint serves %s.", region, s.aws.region()))
		case p.get("DryRun") == "true":
			s.writeEC2Error(w, http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
		default:
			s.mu.Lock()
			body, err := h(s.aws, p)
			s.mu.Unlock()
			if err != nil {
				s.writeEC2Error(w, err.status, err.code, err.msg)
				return
			}
			reflect.ValueOf(body).Elem().FieldByName("RequestID").SetString(s.aws.requestID())
			writeAWSXML(w, http.StatusOK, action+"Response", ec2Namespace, body)
		}
	})
}

// sigV4Scope reads region and service from a SigV4 Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, ...").
// Signatures are not verified: any static credentials work.
func sigV4Scope(auth string) (region, service string, ok bool) {
	_, cred, found := strings.Cut(auth, "Credential=")
	if !found {
		return "", "", false
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return "", "", false
	}
	return parts[2], parts[3], true
}

// writeEC2Error renders EC2's error document, which unlike its responses has
// no namespace and spells RequestID in capitals.
func (s *Sim) writeEC2Error(w http.ResponseWriter, status int, code, message string) {
	type xmlError struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	writeAWSXML(w, status, "Response", "", &struct {
		Errors    []xmlError `xml:"Errors>Error"`
		RequestID string     `xml:"RequestID"`
	}{[]xmlError{{code, message}}, s.aws.requestID()})
}

func writeAWSXML(w http.ResponseWriter, status int, root, namespace string, body any) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	start := xml.StartElement{Name: xml.Name{Local: root}}
	if namespace != "" {
		start.Attr = []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: namespace}}
	}
	if err := xml.NewEncoder(&buf).EncodeElement(body, start); err != nil {
		http.Error(w, "cloudsim: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// awsParams are the form fields of one request. Lists are flattened with
// 1-based indices: InstanceId.1, Filter.2.Value.1, IpPermissions.1.IpRanges.3.CidrIp.
type awsParams url.Values

func (p awsParams) get(key string) string { return url.Values(p).Get(key) }

func (p awsParams) has(key string) bool { _, ok := p[key]; return ok }

// describedKinds are, per Describe action, the list parameter and the
// filter that name the objects it reads by their IDs.
var describedKinds = map[string]struct{ list, filter string }{
	"DescribeInstances":          {"InstanceId", "instance-id"},
	"DescribeNetworkInterfaces":  {"NetworkInterfaceId", "network-interface-id"},
	"DescribeSecurityGroups":     {"GroupId", "group-id"},
	"DescribeSecurityGroupRules": {"", "group-id"},
}

// describedIDs are the objects a Describe call reads: the instances,
// network interfaces or security groups (rules: of the groups) it names,
// as IDs or in the filter on their own IDs. A filter on other fields is a
// search, not a read of a named object.
func (p awsParams) describedIDs(action string) []string {
	kind, ok := describedKinds[action]
	if !ok {
		return nil
	}
	var ids []string
	if kind.list != "" {
		for _, m := range p.members(kind.list) {
			ids = append(ids, p.get(m))
		}
	}
	for _, f := range p.members("Filter") {
		if p.get(f+".Name") == kind.filter {
			for _, v := range p.members(f + ".Value") {
				ids = append(ids, p.get(v))
			}
		}
	}
	return ids
}

// members returns "prefix.N" for every index N present, in index order.
func (p awsParams) members(prefix string) []string {
	seen := map[int]bool{}
	for key := range p {
		rest, ok := strings.CutPrefix(key, prefix+".")
		if !ok {
			continue
		}
		idx, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(idx); err == nil && n > 0 {
			seen[n] = true
		}
	}
	idx := make([]int, 0, len(seen))
	for n := range seen {
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = prefix + "." + strconv.Itoa(n)
	}
	return out
}

// list returns the values of prefix.1, prefix.2, ...
func (p awsParams) list(prefix string) []string {
	var out []string
	for _, m := range p.members(prefix) {
		out = append(out, p.get(m))
	}
	return out
}

// int32 parses an optional integer parameter.
func (p awsParams) int32(key string) (*int32, *awsError) {
	if !p.has(key) {
		return nil, nil
	}
	n, err := strconv.ParseInt(p.get(key), 10, 32)
	if err != nil {
		return nil, ec2ClientError("InvalidParameterValue", "Invalid value '%s' for %s", p.get(key), key)
	}
	v := int32(n)
	return &v, nil
}

// awsTagParam is one Tag.N. An absent Value is not an empty one (DeleteTags
// tells them apart), hence hasValue.
type awsTagParam struct {
	key, value string
	hasValue   bool
}

// tags reads prefix.N.Key / prefix.N.Value pairs.
func (p awsParams) tags(prefix string) []awsTagParam {
	var out []awsTagParam
	for _, m := range p.members(prefix) {
		out = append(out, awsTagParam{p.get(m + ".Key"), p.get(m + ".Value"), p.has(m + ".Value")})
	}
	return out
}

// tagSpecification returns the tags requested for resourceType by
// TagSpecification.N; a specification for another type is an error, as in EC2.
func (p awsParams) tagSpecification(resourceType string) (map[string]string, *awsError) {
	var out map[string]string
	for _, m := range p.members("TagSpecification") {
		if rt := p.get(m + ".ResourceType"); rt != resourceType {
			return nil, ec2ClientError("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
		tags := p.tags(m + ".Tag")
		if err := validateTags(tags); err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		for _, t := range tags {
			out[t.key] = t.value
		}
		if len(out) > maxTagsPerResource {
			return nil, tagLimitExceeded()
		}
	}
	return out, nil
}

// checkEC2IDs rejects IDs that are not prefix- and 8 or 17 hex digits with
// code (e.g. InvalidInstanceID.Malformed), before anything is looked up.
func checkEC2IDs(prefix, code string, ids []string) *awsError {
	for _, id := range ids {
		if !validAWSID(prefix, id) {
			return ec2ClientError(code, "Invalid id: \"%s\" (expecting \"%s-...\")", id, prefix)
		}
	}
	return nil
}

// requireIDs fails with EC2's NotFound error (code) naming every ID that
// does not exist.
func requireIDs(ids []string, exists func(string) bool, code, noun string) *awsError {
	var missing []string
	for _, id := range ids {
		if !exists(id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return ec2NotFound(code, noun, missing)
	}
	return nil
}

// ec2NotFound is EC2's message for IDs that do not exist, e.g. "The instance
// IDs 'i-1, i-2' do not exist".
func ec2NotFound(code, noun string, ids []string) *awsError {
	if len(ids) == 1 {
		return ec2ClientError(code, "The %s '%s' does not exist", noun, ids[0])
	}
	return ec2ClientError(code, "The %ss '%s' do not exist", noun, strings.Join(ids, ", "))
}

// ec2Filter is one Filter.N of a Describe call.
type ec2Filter struct {
	name     string
	patterns []*regexp.Regexp
}

// filters reads Filter.N.Name / Filter.N.Value.M. Besides names, tag:KEY
// and tag-key are always accepted; any other name is EC2's InvalidParameterValue.
func (p awsParams) filters(names ...string) ([]ec2Filter, *awsError) {
	var out []ec2Filter
	for _, m := range p.members("Filter") {
		name := p.get(m + ".Name")
		if !strings.HasPrefix(name, "tag:") && name != "tag-key" && !slices.Contains(names, name) {
			return nil, ec2ClientError("InvalidParameterValue", "The filter '%s' is invalid", name)
		}
		f := ec2Filter{name: name}
		for _, v := range p.list(m + ".Value") {
			// Filter values take * and ? wildcards.
			expr := strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(v))
			f.patterns = append(f.patterns, regexp.MustCompile("^"+expr+"$"))
		}
		out = append(out, f)
	}
	return out, nil
}

// matchEC2Filters reports whether a resource passes every filter: some value
// of the attribute matches some value of the filter. attr returns the
// resource's values for a filter name.
func matchEC2Filters(filters []ec2Filter, tags map[string]string, attr func(name string) []string) bool {
	for _, f := range filters {
		var have []string
		switch {
		case strings.HasPrefix(f.name, "tag:"):
			if v, ok := tags[strings.TrimPrefix(f.name, "tag:")]; ok {
				have = []string{v}
			}
		case f.name == "tag-key":
			for k := range tags {
				have = append(have, k)
			}
		default:
			have = attr(f.name)
		}
		matched := false
		for _, re := range f.patterns {
			for _, v := range have {
				matched = matched || re.MatchString(v)
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

// ec2Paginate applies MaxResults / NextToken. idParam names the ID list that
// EC2 refuses to combine with MaxResults ("" when the request has no IDs).
func ec2Paginate[T any](p awsParams, items []T, idParam string) ([]T, string, *awsError) {
	maxResults, err := p.int32("MaxResults")
	if err != nil {
		return nil, "", err
	}
	start := 0
	if tok := p.get("NextToken"); tok != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(tok)
		n, serr := strconv.Atoi(strings.TrimPrefix(string(raw), "cloudsim-offset-"))
		if derr != nil || serr != nil || n < 0 || n > len(items) {
			return nil, "", ec2ClientError("InvalidPaginationToken", "Invalid pagination token: %s", tok)
		}
		start = n
	}
	if maxResults == nil {
		return items[start:], "", nil
	}
	if idParam != "" {
		return nil, "", ec2ClientError("InvalidParameterCombination", "The parameter %s cannot be used with the parameter maxResults", idParam)
	}
	if *maxResults < 5 || *maxResults > 1000 {
		return nil, "", ec2ClientError("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", *maxResults)
	}
	end := min(start+int(*maxResults), len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "cloudsim-offset-%d", end))
	}
	return items[start:end], next, nil
}

type ec2Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// ec2TagSet renders tags sorted by key, for stable output.
func ec2TagSet(tags map[string]string) []ec2Tag {
	out := make([]ec2Tag, 0, len(tags))
	for k, v := range tags {
		out = append(out, ec2Tag{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
