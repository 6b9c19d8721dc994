// Command jitbench measures the provider against the cloud emulator at
// emulated latency (make bench): the scenarios of issue 14 (S1–S4 and one
// subnet of 300 VMs), each through the real provider binary driven by a
// real OpenTofu, as a user runs it. For each measured command it prints the
// calls the emulator served by operation, reads per object read, the wall
// time next to its lower bound, and the provider's CPU time and peak
// resident memory (getrusage of each provider process, which a small
// wrapper around the binary reports).
//
// The emulator runs in this process on loopback. Worlds are seeded fast
// (no latency, no throttling); only the measured commands run at the
// emulated latency: every read (ARM GET, EC2 Describe) takes -read-latency
// and every ARM write's long-running operation runs -write-latency, during
// which ARM refuses other writes to the same NSG, as it does.
//
//	jitbench [-run REGEXP] [-tofu bin/tofu] [-provider bin/terraform-provider-jit]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

var (
	tofuFlag     = flag.String("tofu", "bin/tofu", "OpenTofu binary")
	providerFlag = flag.String("provider", "bin/terraform-provider-jit", "provider binary (make build)")
	readLatency  = flag.Duration("read-latency", 50*time.Millisecond, "latency of every read")
	writeLatency = flag.Duration("write-latency", 300*time.Millisecond, "duration of every write operation (an NSG accepts one at a time)")
	runFlag      = flag.String("run", "", "run only the scenarios whose name matches this regular expression")
	keepFlag     = flag.Bool("keep", false, "keep the working directory")
	// 45, not issue 14's 50: each request made for someone (on_behalf_of)
	// keeps its record in a tag of the VM, and Azure allows 50 tags per
	// resource, of which the VM's own and the policy's settings take 5 here.
	requesters = flag.Int("requesters", 45, "S2: how many people request the one VM (at most 50 less the VM's other tags)")
	countFlag  = flag.Int("count", 1, "run each scenario this many times; each row shows its fastest run, and the median wall time")
	traceFlag  = flag.Bool("trace", false, "log every request the emulator serves to trace.log in the scenario's directory (with -keep)")
	tfLog      = flag.String("tf-log", "", "TF_LOG level for every command, logged to tofu-<n>.log in the scenario's directory (with -keep)")
)

func main() {
	if os.Getenv(envProvider) != "" {
		os.Exit(wrapProvider())
	}
	flag.Parse()
	match, err := regexp.Compile(*runFlag)
	if err != nil {
		fail(err)
	}
	b, err := newBench()
	if err != nil {
		fail(err)
	}
	if !*keepFlag {
		defer func() { _ = os.RemoveAll(b.work) }()
	} else {
		fmt.Fprintf(os.Stderr, "working directory: %s\n", b.work)
	}
	var rows []*row
	for _, s := range scenarios {
		if !match.MatchString(s.name) {
			continue
		}
		var runs [][]*row
		for i := range *countFlag {
			fmt.Fprintf(os.Stderr, "== %s (run %d of %d): %s\n", s.name, i+1, *countFlag, s.title)
			start := time.Now()
			got, err := s.run(b, filepath.Join(b.work, fmt.Sprintf("%s-%d", s.name, i+1)))
			if err != nil {
				got = append(got, &row{name: s.name, title: "failed", err: err})
			}
			runs = append(runs, got)
			fmt.Fprintf(os.Stderr, "   (%s with its setup)\n", time.Since(start).Round(100*time.Millisecond))
		}
		rows = append(rows, fastest(runs)...)
	}
	printTable(os.Stdout, rows)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "jitbench:", err)
	os.Exit(1)
}
