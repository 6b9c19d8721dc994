package provider

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Two provider processes (two pipelines applying requests at once) share no
// locks: only ARM's SecurityRuleConflict tells one that the other took the
// priority it chose. Every grant must still land, each at its own priority.
func TestOpenGrant_twoProcessesOnOneNSGNeverCollide(t *testing.T) {
	cloud := newTestCloud(t, "world")
	processes := []*azure.Backend{
		azure.NewBackend(cloud.azureClient(t), ""),
		azure.NewBackend(cloud.azureClient(t), ""),
	}
	m, err := processes[0].Machine(t.Context(), testVM+"web")
	if err != nil {
		t.Fatal(err)
	}
	const perProcess = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*perProcess)
	for p, c := range processes {
		for i := range perProcess {
			wg.Add(1)
			go func() {
				defer wg.Done()
				port := jit.PortProtocol{Number: 8000 + p*perProcess + i, Protocol: jit.ProtocolTCP}
				_, err := c.OpenGrant(t.Context(), m, engine.Grant{
					ID: fmt.Sprintf("p%d-r%d", p, i), Policy: "web", Justification: "load", Requestor: "ci",
					Ports: []engine.GrantPort{{Port: port, Source: "198.51.100.7", End: requestEpoch.Add(time.Hour)}},
				})
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
		seen := map[int]string{}
		grants := 0
		for _, r := range cloud.nsgRules(t, nsg) {
			if other, taken := seen[r.Priority]; taken {
				t.Errorf("%s: %s and %s share priority %d", nsg, r.Name, other, r.Priority)
			}
			seen[r.Priority] = r.Name
			if mk, ok := jit.ParseMarker(r.Description); ok && mk.Kind == jit.MarkerGrant {
				grants++
			}
		}
		if grants != 2*perProcess {
			t.Errorf("%s holds %d grants, want %d", nsg, grants, 2*perProcess)
		}
	}
	writes := cloud.Calls()["SecurityRules.CreateOrUpdate"]
	t.Logf("%d grants in 2 NSGs took %d rule writes: %d lost their priority to the other process and were placed again", 4*perProcess, writes, writes-4*perProcess)
}

// The provider writes a VM's tags on the VM as it read it, guarded by its
// ETag: tags another writer added since the read are kept, not overwritten
// from the stale read (ARM refuses the write, 412, and the VM is read
// again).
func TestSetMachineTags_keepsTagsWrittenSinceTheRead(t *testing.T) {
	cloud := newTestCloud(t, "world")
	ours := azure.NewBackend(cloud.azureClient(t), "")
	m, err := ours.Machine(t.Context(), testVM+"web")
	if err != nil {
		t.Fatal(err)
	}
	if err := cloud.azureClient(t).UpdateMachineTags(t.Context(), testVM+"web", map[string]string{"owner": "someone else"}, nil); err != nil {
		t.Fatal(err)
	}
	cloud.ResetCalls()
	if err := ours.SetMachineTags(t.Context(), m, map[string]string{"jit-policy": "web"}, nil); err != nil {
		t.Fatal(err)
	}
	after, err := azure.NewBackend(cloud.azureClient(t), "").Machine(t.Context(), testVM+"web")
	if err != nil {
		t.Fatal(err)
	}
	if after.Tags["owner"] != "someone else" || after.Tags["jit-policy"] != "web" || after.Tags["team"] != "web" {
		t.Fatalf("tags after the write: %v", after.Tags)
	}
	if n := cloud.Calls()["VirtualMachines.Update"]; n != 2 {
		t.Errorf("%d VM updates, want 2: one refused on its stale ETag, one on the VM read again", n)
	}
	// What this process wrote is what it knows now: no read to tag again.
	cloud.ResetCalls()
	if err := ours.SetMachineTags(t.Context(), m, map[string]string{"jit-policy": "web"}, nil); err != nil {
		t.Fatal(err)
	}
	if calls := cloud.Calls(); len(calls) != 0 {
		t.Errorf("tagging again with the same tags called %v", calls)
	}
}

// Two processes writing one VM's tags at once (two configurations' policies,
// or a person) never lose each other's change: each write carries the ETag
// it merged from, and a 412 reads and merges again.
func TestUpdateMachineTags_twoProcessesLoseNothing(t *testing.T) {
	cloud := newTestCloud(t, "world")
	// A slow write lets the other process read between a read and its write.
	cloud.InjectFault(cloudsim.Fault{Operation: "VirtualMachines.Update", Latency: 30 * time.Millisecond})
	processes := []*azure.Client{cloud.azureClient(t), cloud.azureClient(t)}
	const perProcess = 8
	var wg sync.WaitGroup
	for p, c := range processes {
		for i := range perProcess {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("p%d-k%d", p, i)
				if err := c.UpdateMachineTags(t.Context(), testVM+"web", map[string]string{key: "v"}, nil); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	// Read back by a third client: each process's own reads are its
	// cache, where the other's writes are not.
	m, err := cloud.azureClient(t).Machine(t.Context(), testVM+"web")
	if err != nil {
		t.Fatal(err)
	}
	for p := range processes {
		for i := range perProcess {
			if key := fmt.Sprintf("p%d-k%d", p, i); m.Tags[key] != "v" {
				t.Errorf("tag %s was lost: %v", key, m.Tags)
			}
		}
	}
}

// A request's grant written again (its rules deleted out of band, or a
// renewal) supersedes nothing: a newer grant of the same person, made since
// and which superseded it, stays. The refresh that planned the rewrite
// may have run before that newer grant existed.
func TestRegrant_neverSupersedesANewerGrantOfTheSamePerson(t *testing.T) {
	for _, machine := range []string{testVM + "web", testEC2} {
		t.Run(machine[strings.LastIndex(machine, "/")+1:], func(t *testing.T) {
			cloud := newTestCloud(t, "world")
			clock := clocktest.New(requestEpoch)
			applyPolicy(t, cloud, machine)
			e := engine.New(clock, []engine.Backend{azure.NewBackend(cloud.azureClient(t), ""), aws.NewBackend(cloud.awsClient(t))})
			open := func(source string) *engine.OpenedRequest {
				o, findings := e.OpenRequest(t.Context(), engine.Request{MachineID: machine, Justification: "INC-1",
					Ports: []engine.RequestPort{{Number: 22, Source: source, Duration: "PT1H"}}})
				if jit.HasError(findings) {
					t.Fatal(findings)
				}
				return o
			}
			older := open("203.0.113.7/32")
			clock.Advance(time.Minute)
			newer := open("203.0.113.8/32")
			held := func(request string) int {
				n := 0
				if strings.HasPrefix(machine, "i-") {
					for _, g := range cloud.grantGroups(t) {
						if strings.Contains(g, "203.0.113.8/32") == (request == newer.Grant.ID) {
							n++
						}
					}
					return n
				}
				for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
					for _, g := range cloud.grants(t, nsg) {
						if strings.Contains(g, request) {
							n++
						}
					}
				}
				return n
			}
			if held(older.Grant.ID) != 0 || held(newer.Grant.ID) == 0 {
				t.Fatalf("before: the older request holds %d, the newer %d", held(older.Grant.ID), held(newer.Grant.ID))
			}
			if _, err := e.Regrant(t.Context(), older.Grant, machine); err != nil {
				t.Fatal(err)
			}
			if held(newer.Grant.ID) == 0 {
				t.Fatal("writing the older request again removed the newer grant of the same person")
			}
			if held(older.Grant.ID) == 0 {
				t.Fatal("the older request was not written again")
			}
		})
	}
}

// Whether a grant is the same person's, and so superseded, is read from
// its record on the VM, written before its rules. A process that read the
// VM before another wrote a grant for someone else, and reads the NSG
// after, must read the VM again before superseding: otherwise the other
// grant's record is missing, its marker alone names the same identity, and
// the other person's grant is removed.
func TestOpenGrant_aRecordWrittenSinceTheVMWasReadIsSeenBeforeSuperseding(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	applyPolicy(t, cloud, testVM+"web")
	first := engine.New(clock, []engine.Backend{azure.NewBackend(cloud.azureClient(t), "")})
	second := engine.New(clock, []engine.Backend{azure.NewBackend(cloud.azureClient(t), "")})
	request := func(source, onBehalfOf string) engine.Request {
		return engine.Request{MachineID: testVM + "web", Justification: "INC-1", OnBehalfOf: onBehalfOf,
			Ports: []engine.RequestPort{{Number: 22, Source: source, Duration: "PT1H"}}}
	}
	// The first process reads the VM (a plan, say) ...
	if _, err := first.Machine(t.Context(), testVM+"web"); err != nil {
		t.Fatal(err)
	}
	// ... the second opens a grant for erin, with its record ...
	erin, findings := second.OpenRequest(t.Context(), request("203.0.113.12/32", "erin@example.com"))
	if jit.HasError(findings) {
		t.Fatal(findings)
	}
	// ... and the first opens its own identity's grant, for nobody else.
	clock.Advance(time.Minute)
	if _, findings := first.OpenRequest(t.Context(), request("203.0.113.7/32", "")); jit.HasError(findings) {
		t.Fatal(findings)
	}
	for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
		if !slices.ContainsFunc(cloud.grants(t, nsg), func(g string) bool { return strings.Contains(g, erin.Grant.ID) }) {
			t.Fatalf("%s lost erin's grant: %v", nsg, cloud.grants(t, nsg))
		}
	}
}
