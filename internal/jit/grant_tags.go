package jit

// An AWS grant is a security group of its own, created in the instance's
// VPC, holding the granted ingress rules and attached to the instance's
// primary ENI beside the groups it already had. The group carries the
// grant in two tags, so it can be found and revoked without state (by
// revoke-expired, from another configuration):
//
//	jit-grant   = the grant's marker, GrantMarker(...).String(): policy hash,
//	              end time, requestor and justification, with its checksum
//	jit-request = the ID of the request that made the grant
//
// Expired grants are found with DescribeSecurityGroups filtered on
// tag-key=jit-grant; revoking one detaches the group from every ENI that
// carries it, then deletes it.
const (
	TagGrant   = "jit-grant"
	TagRequest = "jit-request"
)
