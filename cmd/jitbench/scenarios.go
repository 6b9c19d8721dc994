package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

type scenario struct {
	name, title string
	run         func(b *bench, dir string) ([]*row, error)
}

var scenarios = []scenario{
	{"S1", "one policy of 20 VMs x 4 ports over their NIC NSGs and one subnet NSG (S4: its no-op apply)", runS1},
	{"S2", "requests of many people for one port of one VM, in one apply", runS2},
	{"S3", "500 resources (100 policies, 400 requests) on 100 VMs in 10 subnets: a plan with its refresh", runS3},
	{"scale", "one subnet of 300 VMs x 4 ports under one policy", runScale},
}

// readChain is the reads that depend on each other before anything can be
// planned: VM, then NIC, then subnet, then NSG. Everything else can be
// read beside them.
func readChain() time.Duration { return 4 * *readLatency }

func runS1(b *bench, dir string) ([]*row, error) {
	l := layout{name: "s1", subnets: 1, vms: 20, nicNSGs: true}
	w, err := b.world(dir, l.fixture(), cloudsim.Options{})
	if err != nil {
		return nil, err
	}
	defer w.close()
	var rows []*row
	// What OpenTofu and the provider cost before the provider reads
	// anything: a plan of one resource that needs no cloud call.
	if err := w.configure(providers(w) + `resource "jit_policy" "floor" {
  count               = 0
  name                = "floor"
  virtual_machine_ids = ["` + l.vm(0, 0) + `"]
}
`); err != nil {
		return nil, err
	}
	floor, _ := w.measure("floor", "plan with the provider configured and no cloud call: what OpenTofu and the provider's start cost", "plan", "-input=false")
	rows = append(rows, floor)
	if err := w.configure(providers(w) + policy("s1", l.allVMs())); err != nil {
		return nil, err
	}
	plan, _ := w.measure("S1 plan", "plan of the policy (saved)", "plan", "-input=false", "-out=s1.tfplan")
	plan.bound, plan.boundWhy = readChain(), "one read chain"
	rows = append(rows, plan)
	if plan.err != nil {
		return rows, nil
	}
	before := jitRules(w.sim)
	apply, _ := w.measure("S1 apply", "apply of the saved plan", "apply", "-input=false", "s1.tfplan")
	// One deny per port in each NSG expresses the plan; NSGs in parallel.
	apply.bound, apply.boundWhy = 4**writeLatency+readChain(), "4 writes per NSG (one deny per port) + one read chain"
	apply.notes = append(apply.notes, writtenPerNSG(before, jitRules(w.sim)))
	rows = append(rows, apply)
	if apply.err != nil {
		return rows, nil
	}
	noop, _ := w.measure("S4 no-op apply", "apply of S1 again, nothing changed", "apply", "-input=false", "-auto-approve")
	noop.bound, noop.boundWhy = readChain(), "one read chain, 0 writes"
	return append(rows, noop), nil
}

func runS2(b *bench, dir string) ([]*row, error) {
	l := layout{name: "s2", subnets: 1, vms: 1, nicNSGs: true}
	people := make([]cloudsim.Identity, 1000)
	for i := range people {
		people[i] = cloudsim.Identity{UPN: fmt.Sprintf("person-%03d@example.com", i), ObjectID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i)}
	}
	w, err := b.world(dir, l.fixture(), cloudsim.Options{Identities: people})
	if err != nil {
		return nil, err
	}
	defer w.close()
	vm := l.vm(0, 0)
	if err := w.configure(providers(w) + policy("s2", []string{vm})); err != nil {
		return nil, err
	}
	if _, err := w.tofu("apply", "-input=false", "-auto-approve"); err != nil {
		return nil, err
	}
	// Many people, as this provider can tell them apart: on whose behalf
	// a request is made, or, before requests said so, who is
	// authenticated (a provider configuration per person, each its own
	// provider process with its own identity).
	onBehalf, err := w.hasAttribute("jit_access_request", "on_behalf_of")
	if err != nil {
		return nil, err
	}
	var config strings.Builder
	var aliases []string
	how := fmt.Sprintf("%d provider configurations, each its own process and identity", *requesters)
	if onBehalf {
		how = "one provider process, on_behalf_of each person"
	}
	for i := range *requesters {
		extra := fmt.Sprintf("  on_behalf_of = \"person-%03d@example.com\"\n", i)
		if !onBehalf {
			aliases = append(aliases, fmt.Sprintf("p%03d", i))
			extra = fmt.Sprintf("  provider = jit.p%03d\n", i)
		}
		config.WriteString(request(fmt.Sprintf("r%03d", i), vm, 22, fmt.Sprintf("198.51.100.%d/32", i+1), extra))
	}
	if err := w.configure(providers(w, aliases...) + policy("s2", []string{vm}) + config.String()); err != nil {
		return nil, err
	}
	var rows []*row
	plan, _ := w.measure("S2 plan", fmt.Sprintf("plan of %d requests (%s)", *requesters, how), "plan", "-input=false", "-out=s2.tfplan")
	plan.bound, plan.boundWhy = readChain(), "one read chain"
	rows = append(rows, plan)
	if plan.err != nil {
		return rows, nil
	}
	apply, _ := w.measure("S2 apply", "apply of the saved plan", "apply", "-input=false", "s2.tfplan")
	apply.bound, apply.boundWhy = time.Duration(*requesters)**writeLatency+readChain(), fmt.Sprintf("%d grant writes per NSG + one read chain", *requesters)
	for nsg, rules := range jitRules(w.sim) {
		grants := 0
		for _, r := range rules {
			if m, ok := jit.ParseMarker(r); ok && m.Kind == jit.MarkerGrant {
				grants++
			}
		}
		apply.notes = append(apply.notes, fmt.Sprintf("%s holds %d grants side by side", nsg, grants))
	}
	slices.Sort(apply.notes)
	return append(rows, apply), nil
}

func runS3(b *bench, dir string) ([]*row, error) {
	l := layout{name: "s3", subnets: 10, vms: 10, nicNSGs: true}
	w, err := b.world(dir, l.fixture(), cloudsim.Options{})
	if err != nil {
		return nil, err
	}
	defer w.close()
	var config strings.Builder
	config.WriteString(providers(w))
	resources := 0
	for i, vm := range l.allVMs() {
		config.WriteString(policy(fmt.Sprintf("p%03d", i), []string{vm}))
		for j, port := range defaultPorts {
			config.WriteString(request(fmt.Sprintf("r%03d_%d", i, port), vm, port, fmt.Sprintf("198.51.100.%d/32", j+1),
				fmt.Sprintf("  depends_on = [jit_policy.p%03d]\n", i)))
		}
		resources += 1 + len(defaultPorts)
	}
	if err := w.configure(config.String()); err != nil {
		return nil, err
	}
	// Policies sharing an NSG cannot apply in one run yet (issue 14, item
	// 5): one policy per subnet at a time, then every request.
	for k := range l.vms {
		args := []string{"apply", "-input=false", "-auto-approve", "-parallelism=32"}
		for s := range l.subnets {
			args = append(args, fmt.Sprintf("-target=jit_policy.p%03d", s*l.vms+k))
		}
		if _, err := w.tofu(args...); err != nil {
			return nil, err
		}
	}
	if _, err := w.tofu("apply", "-input=false", "-auto-approve", "-parallelism=32"); err != nil {
		return nil, err
	}
	plan, out := w.measure("S3 plan", fmt.Sprintf("plan, with its refresh, of %d resources (%d objects)", resources, l.objects()), "plan", "-input=false")
	plan.bound, plan.boundWhy = readChain(), "one read chain"
	if plan.err == nil && !strings.Contains(out, "No changes.") {
		plan.notes = append(plan.notes, "the plan is not empty:\n"+tail(out, 20))
	}

	// The same number of resources that need no cloud at all.
	base, err := b.world(filepath.Join(dir, "baseline"), &cloudsim.Fixture{}, cloudsim.Options{})
	if err != nil {
		return []*row{plan}, err
	}
	defer base.close()
	var data strings.Builder
	for i := range resources {
		fmt.Fprintf(&data, "resource \"terraform_data\" \"d%03d\" {\n  input = %d\n}\n", i, i)
	}
	if err := base.configure(data.String()); err != nil {
		return []*row{plan}, err
	}
	if _, err := base.tofu("apply", "-input=false", "-auto-approve"); err != nil {
		return []*row{plan}, err
	}
	baseline, _ := base.measure("S3 baseline", fmt.Sprintf("plan of %d terraform_data", resources), "plan", "-input=false")
	if baseline.err == nil && plan.err == nil {
		plan.notes = append(plan.notes, fmt.Sprintf("%.1fx the plan of %d terraform_data (%s)", plan.wall.Seconds()/baseline.wall.Seconds(), resources, baseline.wall.Round(10*time.Millisecond)))
	}
	return []*row{plan, baseline}, nil
}

func runScale(b *bench, dir string) ([]*row, error) {
	l := layout{name: "scale", subnets: 1, vms: 300}
	w, err := b.world(dir, l.fixture(), cloudsim.Options{})
	if err != nil {
		return nil, err
	}
	defer w.close()
	if err := w.configure(providers(w) + policy("scale", l.allVMs())); err != nil {
		return nil, err
	}
	plan, _ := w.measure("scale plan", "plan of one policy over 300 VMs in one subnet", "plan", "-input=false", "-out=scale.tfplan")
	plan.bound, plan.boundWhy = readChain(), "one read chain"
	if plan.err != nil {
		return []*row{plan}, nil
	}
	// An NSG holds at most 1,000 rules: a plan past that would write a
	// thousand rules, 5 minutes at this latency, before ARM refuses one.
	perNSG, err := w.plannedRules("scale.tfplan")
	if err != nil {
		return []*row{plan}, err
	}
	for nsg, n := range perNSG {
		plan.notes = append(plan.notes, fmt.Sprintf("plans %d rules in %s", n, nsg[strings.LastIndexByte(nsg, '/')+1:]))
		if n > 1000 {
			plan.notes = append(plan.notes, "more than the 1,000 rules an NSG holds: not applied")
			return []*row{plan}, nil
		}
	}
	before := jitRules(w.sim)
	apply, _ := w.measure("scale apply", "apply of the saved plan", "apply", "-input=false", "scale.tfplan")
	apply.bound, apply.boundWhy = 4**writeLatency+readChain(), "4 writes in the subnet NSG (one deny per port) + one read chain"
	apply.notes = append(apply.notes, writtenPerNSG(before, jitRules(w.sim)))
	return []*row{plan, apply}, nil
}

// jitRules lists, per NSG, the descriptions of the rules jit wrote there.
func jitRules(sim *cloudsim.Server) map[string][]string {
	out := map[string][]string{}
	for _, nsg := range sim.Snapshot().Azure.NetworkSecurityGroups {
		name := nsg.ID[strings.LastIndexByte(nsg.ID, '/')+1:]
		for _, r := range nsg.SecurityRules {
			if _, ok := jit.ParseMarker(r.Description); ok {
				out[name] = append(out[name], r.Description)
			}
		}
	}
	return out
}

// writtenPerNSG tells the longest chain of rules one NSG got.
func writtenPerNSG(before, after map[string][]string) string {
	longest, where := 0, ""
	for nsg, rules := range after {
		if n := len(rules) - len(before[nsg]); n > longest {
			longest, where = n, nsg
		}
	}
	return fmt.Sprintf("longest chain written: %d rules in %s", longest, where)
}

// plannedRules counts the rules a saved plan gives the policies, by target.
func (w *world) plannedRules(planFile string) (map[string]int, error) {
	out, err := w.tofu("show", "-json", planFile)
	if err != nil {
		return nil, err
	}
	var plan struct {
		ResourceChanges []struct {
			Type   string `json:"type"`
			Change struct {
				After struct {
					Rules []struct {
						TargetID string `json:"target_id"`
					} `json:"rules"`
				} `json:"after"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &plan); err != nil {
		return nil, fmt.Errorf("reading the plan: %w", err)
	}
	counts := map[string]int{}
	for _, rc := range plan.ResourceChanges {
		if rc.Type == "jit_policy" {
			for _, r := range rc.Change.After.Rules {
				counts[r.TargetID]++
			}
		}
	}
	return counts, nil
}

// hasAttribute tells whether the provider's schema has the attribute.
func (w *world) hasAttribute(resource, attribute string) (bool, error) {
	out, err := w.tofu("providers", "schema", "-json")
	if err != nil {
		return false, err
	}
	var schema struct {
		Providers map[string]struct {
			Resources map[string]struct {
				Block struct {
					Attributes map[string]json.RawMessage `json:"attributes"`
				} `json:"block"`
			} `json:"resource_schemas"`
		} `json:"provider_schemas"`
	}
	// The JSON is the last line; warnings may precede it.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &schema); err != nil {
		return false, fmt.Errorf("reading the provider schema: %w", err)
	}
	for _, p := range schema.Providers {
		_, ok := p.Resources[resource].Block.Attributes[attribute]
		return ok, nil
	}
	return false, nil
}

func printTable(out io.Writer, rows []*row) {
	fmt.Fprintf(out, "\nemulated latency: %s per read, %s per write operation (one at a time per NSG); lower bound: the longest per-NSG chain of the fewest writes that express the plan, plus one read chain (VM, NIC, subnet, NSG)\n", *readLatency, *writeLatency)
	fmt.Fprintf(out, "GETs/objects: single-object reads over the objects read; reads: every read call (lists, tokens too; not the polls of long-running operations); CPU and RSS: the provider processes' (summed, largest)\n\n")
	fmt.Fprintf(out, "%-16s %9s %9s %7s %17s %6s %7s %10s %9s %6s\n", "scenario", "wall", "bound", "ratio", "GETs/objects", "reads", "writes", "prov. CPU", "peak RSS", "procs")
	for _, r := range rows {
		if r.err != nil && r.calls == nil {
			fmt.Fprintf(out, "%-16s FAILED: %v\n", r.name, r.err)
			continue
		}
		reads, objects := 0, len(r.reads)
		for _, n := range r.reads {
			reads += n
		}
		perObject := "-"
		if objects > 0 {
			perObject = fmt.Sprintf("%d/%d=%.2f", reads, objects, float64(reads)/float64(objects))
		}
		ratio := "-"
		if r.bound > 0 {
			ratio = fmt.Sprintf("%.2f", r.wall.Seconds()/r.bound.Seconds())
		}
		readCalls, writes := 0, 0
		for op, n := range r.calls {
			switch {
			case !isRead(op):
				writes += n
			case !isPoll(op):
				readCalls += n
			}
		}
		fmt.Fprintf(out, "%-16s %9s %9s %7s %17s %6d %7d %10s %8dM %6d\n", r.name, r.wall.Round(10*time.Millisecond), r.bound.Round(10*time.Millisecond), ratio,
			perObject, readCalls, writes, r.cpu.Round(10*time.Millisecond), r.rssKiB/1024, r.processes)
	}
	fmt.Fprintln(out)
	for _, r := range rows {
		if r.calls == nil {
			continue
		}
		fmt.Fprintf(out, "%s: %s", r.name, r.title)
		if r.boundWhy != "" {
			fmt.Fprintf(out, "; bound: %s", r.boundWhy)
		}
		fmt.Fprintln(out)
		ops := make([]string, 0, len(r.calls))
		for op := range r.calls {
			ops = append(ops, op)
		}
		slices.Sort(ops)
		var calls []string
		for _, op := range ops {
			calls = append(calls, fmt.Sprintf("%s %d", op, r.calls[op]))
		}
		fmt.Fprintf(out, "  calls: %s\n", strings.Join(calls, ", "))
		if len(r.walls) > 1 {
			sorted := slices.Clone(r.walls)
			slices.Sort(sorted)
			var all []string
			for _, w := range r.walls {
				all = append(all, w.Round(10*time.Millisecond).String())
			}
			fmt.Fprintf(out, "  runs: %s (median %s)\n", strings.Join(all, ", "), sorted[len(sorted)/2].Round(10*time.Millisecond))
		}
		for _, n := range r.notes {
			fmt.Fprintf(out, "  %s\n", n)
		}
		if r.err != nil {
			fmt.Fprintf(out, "  FAILED: %s\n", firstLines(r.err.Error(), 12))
		}
	}
}

// isPoll tells the reads that poll a long-running operation.
func isPoll(op string) bool {
	return op == "AzureAsyncOperation.Get" || op == "OperationResult.Get"
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n  ")
}
