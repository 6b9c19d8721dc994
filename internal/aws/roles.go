package aws

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Least-privilege IAM policies, per flow: exactly the EC2 actions the
// provider's calls in that flow make (the acceptance tests check both ways
// against the calls the emulator records per flow), narrowed by tag
// conditions where EC2 authorises the action on a resource that carries
// tags (the Service Authorization Reference for Amazon EC2: Describe*
// actions support no resource-level permission; CreateSecurityGroup takes
// aws:RequestTag on the security-group; CreateTags and DeleteTags take
// aws:TagKeys and ec2:CreateAction; AuthorizeSecurityGroupIngress,
// RevokeSecurityGroupIngress and DeleteSecurityGroup take aws:ResourceTag
// on the security-group). sts:GetCallerIdentity, which names the
// requestor, needs no permission.

// Statement is one statement of an IAM policy document.
type Statement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// PolicyDocument is an IAM policy document.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

const (
	anyInstance      = "arn:aws:ec2:*:*:instance/*"
	anyGroup         = "arn:aws:ec2:*:*:security-group/*"
	anyInterface     = "arn:aws:ec2:*:*:network-interface/*"
	anyVPC           = "arn:aws:ec2:*:*:vpc/*"
	grantTagRequired = "aws:RequestTag/" + jit.TagGrant
	grantTagPresent  = "aws:ResourceTag/" + jit.TagGrant
)

// onlyGrantGroups holds a statement to the groups tagged jit-grant: a
// request's own groups, never the groups a policy locks.
var onlyGrantGroups = map[string]map[string]any{"Null": {grantTagPresent: "false"}}

// renewedTagKeys are the tags a renewal rewrites on a grant group.
var renewedTagKeys = []string{jit.TagGrant, "jit-end-*"}

var policyStatements = map[engine.Flow][]Statement{
	engine.FlowConfigure: {
		{Sid: "ReadInstancesAndGroups", Action: []string{"ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSecurityGroups"}, Resource: []string{"*"}},
		{Sid: "LockManagementPorts", Action: []string{"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"}, Resource: []string{anyGroup}},
		{Sid: "KeepPolicySettingsAndBackupsInTags", Action: []string{"ec2:CreateTags", "ec2:DeleteTags"}, Resource: []string{anyInstance, anyGroup},
			// The policy's tags (jit-policy, jit-port-…) and backups (jit:backup:…) only.
			Condition: map[string]map[string]any{"ForAllValues:StringLike": {"aws:TagKeys": []string{"jit-*", "jit:*"}}}},
		// The policy's sweep: its grants that ended, or claim to be its
		// own without fitting it, are detached and deleted.
		{Sid: "DetachGrantGroups", Action: []string{"ec2:ModifyNetworkInterfaceAttribute"}, Resource: []string{anyInterface, anyGroup}},
		{Sid: "DeleteOnlyGrantGroups", Action: []string{"ec2:DeleteSecurityGroup"}, Resource: []string{anyGroup}, Condition: onlyGrantGroups},
	},
	engine.FlowRequest: {
		{Sid: "ReadInstancesAndGroups", Action: []string{"ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups"}, Resource: []string{"*"}},
		{Sid: "CreateGrantGroupsInAnyVPC", Action: []string{"ec2:CreateSecurityGroup"}, Resource: []string{anyVPC}},
		{Sid: "CreateOnlyGroupsTaggedAsGrants", Action: []string{"ec2:CreateSecurityGroup"}, Resource: []string{anyGroup},
			Condition: map[string]map[string]any{"Null": {grantTagRequired: "false"}}},
		{Sid: "TagGrantGroupsWhenCreated", Action: []string{"ec2:CreateTags"}, Resource: []string{anyGroup},
			Condition: map[string]map[string]any{"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}},
		// A renewal moves the ends an existing grant group records: its
		// marker and its ports' end tags, nothing else (not the request
		// nor the record of who asked).
		{Sid: "RecordRenewedEndsOnGrantGroups", Action: []string{"ec2:CreateTags"}, Resource: []string{anyGroup},
			Condition: map[string]map[string]any{"Null": {grantTagPresent: "false"}, "ForAllValues:StringLike": {"aws:TagKeys": renewedTagKeys}}},
		{Sid: "ChangeOnlyGrantGroups", Action: []string{"ec2:AuthorizeSecurityGroupIngress", "ec2:DeleteSecurityGroup", "ec2:RevokeSecurityGroupIngress"}, Resource: []string{anyGroup},
			Condition: onlyGrantGroups},
		// The ENI's whole group list is replaced: EC2 authorises every
		// group in it, the instance's own among them, so no tag narrows it.
		{Sid: "AttachGrantGroups", Action: []string{"ec2:ModifyNetworkInterfaceAttribute"}, Resource: []string{anyInterface, anyGroup}},
	},
	engine.FlowAudit: {
		{Sid: "ReadInstancesAndGroups", Action: []string{"ec2:DescribeInstances", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSecurityGroups"}, Resource: []string{"*"}},
	},
	engine.FlowRevoke: {
		{Sid: "FindGrantGroups", Action: []string{"ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups"}, Resource: []string{"*"}},
		{Sid: "DetachGrantGroups", Action: []string{"ec2:ModifyNetworkInterfaceAttribute"}, Resource: []string{anyInterface, anyGroup}},
		// A group whose ports end apart loses the rules of each port as
		// it ends, and goes with the last.
		{Sid: "EndOnlyGrantGroups", Action: []string{"ec2:DeleteSecurityGroup", "ec2:RevokeSecurityGroupIngress"}, Resource: []string{anyGroup}, Condition: onlyGrantGroups},
	},
}

// PolicyActions are the IAM actions flow's policy allows, sorted.
func PolicyActions(flow engine.Flow) ([]string, error) {
	doc, err := Policy(flow)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range doc.Statement {
		out = append(out, s.Action...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Policy is flow's least-privilege IAM policy.
func Policy(flow engine.Flow) (PolicyDocument, error) {
	statements, ok := policyStatements[flow]
	if !ok {
		return PolicyDocument{}, fmt.Errorf("unknown flow %q", flow)
	}
	doc := PolicyDocument{Version: "2012-10-17"}
	for _, s := range statements {
		s.Effect = "Allow"
		doc.Statement = append(doc.Statement, s)
	}
	return doc, nil
}

// PolicyJSON renders flow's policy for aws_iam_policy's policy argument.
func PolicyJSON(flow engine.Flow) (string, error) {
	doc, err := Policy(flow)
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	return string(b), err
}
