package provider

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/jitaccess/terraform-provider-jit/internal/clouds"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// gcpCloud is a third cloud registered the way a new backend package
// would register itself: a block with one setting, machine IDs of its own
// form, and a backend that keeps one firewall rule per machine and port.
// The embedded engine.Backend is nil: a policy's plan and apply must need
// nothing more of a cloud than what gcpCloud implements, or the test
// panics.
type gcpCloud struct {
	engine.Backend
	project string
	mu      sync.Mutex
	tags    map[string]map[string]string // by machine
	rules   map[string]engine.OwnedRule  // by rule name
}

func (c *gcpCloud) Name() string                      { return "gcp" }
func (c *gcpCloud) Owns(id string) bool               { return strings.HasPrefix(id, "projects/") }
func (c *gcpCloud) Unsupported(*jit.Machine) []string { return nil }

func (c *gcpCloud) Machine(_ context.Context, id string) (*jit.Machine, error) {
	if !strings.HasPrefix(id, "projects/"+c.project+"/instances/") {
		return nil, fmt.Errorf("instance %s: %w", id, engine.ErrNotFound)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return &jit.Machine{Cloud: "gcp", ID: id, Tags: maps.Clone(c.tags[id]), Interfaces: []jit.NetworkInterface{{
		ID: id + "/nic0", PrivateIPs: []string{"10.9.0.4"}, SecurityGroupIDs: []string{"projects/" + c.project + "/firewalls/default"},
	}}}, nil
}

func (c *gcpCloud) SetMachineTags(_ context.Context, m *jit.Machine, set map[string]string, remove func(string) bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	tags := c.tags[m.ID]
	if tags == nil {
		tags = map[string]string{}
	}
	maps.DeleteFunc(tags, func(k, _ string) bool { _, keep := set[k]; return !keep && remove(k) })
	maps.Copy(tags, set)
	c.tags[m.ID] = tags
	return nil
}

func (c *gcpCloud) TaggedMachines(_ context.Context, tag, value string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id, tags := range c.tags {
		if tags[tag] == value {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// PlanPolicy wants one rule per machine and port, named after both.
func (c *gcpCloud) PlanPolicy(_ context.Context, in engine.PolicyInput) (*engine.PolicyChange, error) {
	want := map[string]engine.OwnedRule{}
	for _, m := range in.Machines {
		for _, p := range in.Ports {
			name := fmt.Sprintf("%s-%s-%d", in.Name, m.ID[strings.LastIndex(m.ID, "/")+1:], p.Number)
			want[name] = engine.OwnedRule{MachineIDs: []string{m.ID}, TargetID: m.FilterIDs()[0], Name: name, Priority: 1000, Port: p.PortProtocol()}
		}
	}
	change := &engine.PolicyChange{Rules: slices.Collect(maps.Values(want))}
	change.Write = func(context.Context) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		maps.DeleteFunc(c.rules, func(name string, _ engine.OwnedRule) bool { return strings.HasPrefix(name, in.Name+"-") })
		maps.Copy(c.rules, want)
		return nil
	}
	return change, nil
}

func (c *gcpCloud) ObservePolicy(_ context.Context, in engine.PolicyInput) (*engine.PolicyObservation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := &engine.PolicyObservation{}
	for name, r := range c.rules {
		if strings.HasPrefix(name, in.Name+"-") {
			o.Rules = append(o.Rules, r)
		}
	}
	return o, nil
}

func (c *gcpCloud) ruleNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.rules))
}

// A third cloud is its backend and one entry in clouds.All: its provider
// block, its settings, its machine IDs in validation and a policy over its
// machines follow, through the real CLI, with no other change.
//
// Not parallel: it adds to the registry every provider reads, and Go runs
// no parallel test while a sequential one runs.
func TestAccProvider_aThirdCloudIsOneRegistration(t *testing.T) {
	gcp := &gcpCloud{tags: map[string]map[string]string{}, rules: map[string]engine.OwnedRule{}}
	registered := clouds.All
	clouds.All = append(slices.Clone(registered), engine.Cloud{
		Name:          "gcp",
		Title:         "GCP",
		Description:   "Google Compute Engine access.",
		Settings:      []engine.Setting{{Name: "project", Description: "The project of the instances.", Flag: "project", Selects: true}},
		MachineIDForm: "a GCE instance (projects/PROJECT/instances/NAME)",
		OwnsMachineID: func(id string) bool { return strings.HasPrefix(id, "projects/") },
		Connect: func(_ context.Context, settings map[string]string, _ string) (engine.Backend, error) {
			if settings["project"] == "" {
				return nil, &engine.SettingError{Setting: "project", Err: fmt.Errorf("is required")}
			}
			gcp.project = settings["project"]
			return gcp, nil
		},
	})
	t.Cleanup(func() { clouds.All = registered })

	policy := func(project, machine string) string {
		return fmt.Sprintf(`
provider "jit" {
  gcp {
    project = %q
  }
}

resource "jit_policy" "web" {
  name                = "web"
  virtual_machine_ids = [%q]
  port {
    number                          = 22
    protocol                        = "TCP"
    allowed_source_address_prefixes = ["10.0.0.0/8"]
    max_request_access_duration     = "PT3H"
  }
}
`, project, machine)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				// The registered form joins the others in validation.
				Config:      policy("p", "instances/web"),
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Invalid virtual machine ID[\s\S]*is\s+none\s+of\s+an\s+Azure\s+VM\s+resource\s+ID[\s\S]*an\s+EC2\s+instance\s+ID[\s\S]*or\s+a\s+GCE\s+instance`),
			},
			{
				// A setting the cloud refuses is reported at its attribute.
				Config:      policy("", "projects/p/instances/web"),
				ExpectError: regexp.MustCompile(`Invalid GCP configuration[\s\S]*project:\s+is\s+required`),
			},
			{
				Config: policy("p", "projects/p/instances/web"),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("jit_policy.web", "rules.#", "1"),
					resource.TestCheckResourceAttr("jit_policy.web", "rules.0.name", "web-web-22"),
					resource.TestCheckResourceAttr("jit_policy.web", "rules.0.target_id", "projects/p/firewalls/default"),
					func(*terraform.State) error {
						if got := gcp.ruleNames(); !slices.Equal(got, []string{"web-web-22"}) {
							return fmt.Errorf("the cloud holds rules %q, want web-web-22", got)
						}
						if gcp.tags["projects/p/instances/web"][jit.TagPolicy] != "web" {
							return fmt.Errorf("machine tags %v, want the policy's", gcp.tags["projects/p/instances/web"])
						}
						return nil
					},
				),
			},
		},
		CheckDestroy: func(*terraform.State) error {
			if got := gcp.ruleNames(); len(got) != 0 {
				return fmt.Errorf("rules left after destroy: %q", got)
			}
			return nil
		},
	})
}
