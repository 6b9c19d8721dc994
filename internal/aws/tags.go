package aws

import (
	"context"
	"fmt"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// UpdateInstanceTags sets and removes tags on an instance, keeping every other tag.
func (c *Client) UpdateInstanceTags(_ context.Context, m *jit.Machine, _ map[string]string, _ func(string) bool) error {
	return fmt.Errorf("%s: tagging EC2 instances is not implemented", m.ID)
}
