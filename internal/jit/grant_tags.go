package jit

// An AWS grant is a security group of its own, created in the instance's
// VPC, holding the granted ingress rules and attached to the instance's
// primary ENI beside the groups it already had. The group carries the
// grant in two tags, so it can be found and revoked without state (by
// revoke-expired, from another configuration):
//
//	jit-grant   = the grant's marker, GrantMarker(...).String(): policy hash,
//	              end time (of the last port to end), requestor and
//	              justification, with its checksum
//	jit-request = the ID of the request that made the grant
//	jit-end-…   = each port's own end (see sg_grant.go)
//
// Expired grants are found with DescribeSecurityGroups filtered on
// tag-key=jit-grant; a port that ended has its rules revoked from the
// group, and once every port ended the group is detached from every ENI
// that carries it, then deleted.
const (
	TagGrant   = "jit-grant"
	TagRequest = "jit-request"
)
