// Command cloudsim runs the cloud emulator standalone, for the demo and for
// trying the provider by hand. It prints the endpoints, the environment a
// shell needs, and a ready provider block.
//
//	cloudsim -fixture examples/demo/fixture.json [-addr 127.0.0.1:0] [-env-file FILE]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
)

func main() {
	fixture := flag.String("fixture", "", "JSON fixture seeding both clouds (required)")
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	envFile := flag.String("env-file", "", "also write the environment as shell exports to this file")
	poll := flag.Duration("poll-interval", 200*time.Millisecond, "how long long-running ARM operations stay in progress")
	flag.Parse()
	if *fixture == "" {
		flag.Usage()
		os.Exit(2)
	}
	fx, err := cloudsim.LoadFixture(*fixture)
	if err != nil {
		log.Fatal(err)
	}
	sim, err := cloudsim.New(fx, cloudsim.Options{PollInterval: *poll})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := cloudsim.Start(sim, *addr)
	if err != nil {
		log.Fatal(err)
	}
	env := srv.Env()
	if *envFile != "" {
		var b strings.Builder
		for _, kv := range env {
			fmt.Fprintf(&b, "export %s=%q\n", kv[0], kv[1])
		}
		if err := os.WriteFile(*envFile, []byte(b.String()), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("cloudsim listening on %s\n\n", srv.URL)
	fmt.Printf("  Azure Resource Manager  %s\n  EC2 and STS             %s\n  admin API               %s/_admin/state | calls | calls/by-flow | operations | faults\n\n", srv.URL, srv.URL, srv.URL)
	fmt.Println("Environment:")
	for _, kv := range env {
		fmt.Printf("  export %s=%q\n", kv[0], kv[1])
	}
	fmt.Printf("\nProvider block:\n\n%s\n", srv.ProviderBlock())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	_ = srv.Close()
	// The demo prints these: what the provider asked of the clouds, by the
	// flow its User-Agent named.
	byFlow := sim.CallsByFlow()
	flows := make([]string, 0, len(byFlow))
	for flow := range byFlow {
		flows = append(flows, flow)
	}
	sort.Strings(flows)
	fmt.Println("calls:")
	for _, flow := range flows {
		label := flow
		if flow == cloudsim.NoFlow {
			label = "(no flow)"
		}
		fmt.Printf("  %s\n", label)
		ops := make([]string, 0, len(byFlow[flow]))
		for op := range byFlow[flow] {
			ops = append(ops, op)
		}
		sort.Strings(ops)
		for _, op := range ops {
			fmt.Printf("    %-43s %d\n", op, byFlow[flow][op])
		}
	}
}
