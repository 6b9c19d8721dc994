// Command terraform-provider-jit serves the jit provider over the plugin
// protocol. Subcommands for cron and auditors share the binary so one
// release artifact carries everything.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/jitaccess/terraform-provider-jit/internal/command"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/provider"
)

// version is set by goreleaser.
var version = "dev"

func main() {
	// Subcommands come before the server's flags, which they do not share.
	if len(os.Args) > 1 && os.Args[1] == "revoke-expired" {
		// An interrupted run stops between calls; what it did not reach
		// waits for the next run.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := command.RevokeExpired(ctx, os.Args[2:], os.Stdout, os.Stderr, jit.NewClock())
		stop()
		os.Exit(code)
	}

	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address:         "registry.terraform.io/jitaccess/jit",
		Debug:           debug,
		ProtocolVersion: 6,
	})
	if err != nil {
		log.Fatal(err)
	}
}
