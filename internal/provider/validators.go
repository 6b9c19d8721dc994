package provider

import (
	"context"
	"fmt"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/jitaccess/terraform-provider-jit/internal/clouds"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Validators of static values, so that `validate` finds every error that
// needs no cloud, with the attribute's path. The checks themselves are the
// core's; these only adapt them.

var (
	policyNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// assignableScopePattern is where an Azure custom role may be assigned.
	assignableScopePattern = regexp.MustCompile(`(?i)^(/subscriptions/[^/]+(/resourceGroups/[^/]+(/providers/.+)?)?|/providers/Microsoft\.Management/managementGroups/[^/]+)$`)
	firewallIDPattern      = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/azureFirewalls/[^/]+$`)
)

// azureFirewallIDValidator accepts an Azure Firewall resource ID.
var azureFirewallIDValidator = stringvalidator.RegexMatches(firewallIDPattern,
	"must be an Azure Firewall resource ID: /subscriptions/…/resourceGroups/…/providers/Microsoft.Network/azureFirewalls/…")

// protocolValidator accepts a JIT port's protocol.
var protocolValidator = stringvalidator.OneOf(string(jit.ProtocolTCP), string(jit.ProtocolUDP), string(jit.ProtocolAny))

// stringCheck is a string validator from a core check: err names what is wrong.
type stringCheck struct {
	description string
	summary     string
	check       func(string) error
}

func (v stringCheck) Description(context.Context) string         { return v.description }
func (v stringCheck) MarkdownDescription(context.Context) string { return v.description }

func (v stringCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, v.summary, err.Error())
	}
}

// virtualMachineIDValidator rejects IDs that name neither an Azure VM nor
// an EC2 instance.
var virtualMachineIDValidator = stringCheck{
	description: "must be an Azure VM resource ID or an EC2 instance ID",
	summary:     "Invalid virtual machine ID",
	check: func(s string) error {
		_, err := engine.CloudOfMachine(clouds.All, s)
		return err
	},
}

// onBehalfOfValidator accepts the name of the person a request is made for,
// short enough that every cloud records it whole, and free of characters
// that would make it read differently there.
var onBehalfOfValidator = stringCheck{
	description: fmt.Sprintf("must be 1 to %d characters, without control or formatting characters", jit.MaxTagValueLength),
	summary:     "Invalid on_behalf_of",
	check: func(s string) error {
		if s == "" {
			return fmt.Errorf("is empty; leave on_behalf_of out when the request is made for nobody else")
		}
		if n := jit.TagValueLength(s); n > jit.MaxTagValueLength {
			return fmt.Errorf("is %d characters long (UTF-16 code units, as Azure counts them); at most %d fit whole in the tag that records it", n, jit.MaxTagValueLength)
		}
		return jit.CheckFreeText(s)
	},
}

// sourcePrefixValidator accepts a CIDR, an address or "*".
var sourcePrefixValidator = stringCheck{
	description: `must be an IPv4 or IPv6 CIDR, an address, or "*"`,
	summary:     "Invalid source address prefix",
	check: func(s string) error {
		_, err := jit.ParsePrefix(s)
		return err
	},
}

// freeTextValidator refuses text that would read differently in the
// cloud than it is: control and formatting characters.
var freeTextValidator = stringCheck{
	description: "must hold no control or formatting characters",
	summary:     "Invalid text",
	check:       jit.CheckFreeText,
}

// durationValidator accepts an ISO 8601 duration between min and max
// (inclusive); min 0 means any positive duration.
func durationValidator(summary string, lo, hi jit.Duration) stringCheck {
	return stringCheck{
		description: fmt.Sprintf("must be an ISO 8601 duration up to %s", hi),
		summary:     summary,
		check: func(s string) error {
			d, err := jit.ParseDuration(s)
			switch {
			case err != nil:
				return err
			case lo > 0 && d < lo, d > hi:
				return fmt.Errorf("the duration must lie between %s and %s; it is %s", max(lo, 0), hi, d)
			case d <= 0:
				return fmt.Errorf("the duration must be positive; it is %s", d)
			}
			return nil
		},
	}
}

var (
	maxRequestAccessDurationValidator = durationValidator("Invalid maximum request duration", jit.MinMaxRequestAccessDuration, jit.MaxMaxRequestAccessDuration)
	requestDurationValidator          = durationValidator("Invalid duration", 0, jit.MaxMaxRequestAccessDuration)
)

// tftypesAt is the attribute of an object value, as written in the
// configuration; a null value when it is absent or the value is no object.
func tftypesAt(v tftypes.Value, name string) tftypes.Value {
	var fields map[string]tftypes.Value
	if err := v.As(&fields); err != nil {
		return tftypes.NewValue(tftypes.DynamicPseudoType, nil)
	}
	if f, ok := fields[name]; ok {
		return f
	}
	return tftypes.NewValue(tftypes.DynamicPseudoType, nil)
}
