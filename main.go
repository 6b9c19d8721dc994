// Command terraform-provider-jit serves the jit provider over the plugin
// protocol. Subcommands for cron and auditors share the binary so one
// release artifact carries everything.
package main

import (
	"context"
	"flag"
	"io"
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

// subcommands of the binary, for cron jobs, scheduled pipelines and auditors.
var subcommands = map[string]func(context.Context, []string, io.Writer, io.Writer, jit.Clock) int{
	"revoke-expired": command.RevokeExpired,
	"audit":          command.Audit,
}

func main() {
	// Subcommands come before the server's flags, which they do not share.
	if len(os.Args) > 1 {
		if run, ok := subcommands[os.Args[1]]; ok {
			// An interrupted run stops between calls; what it did not
			// reach waits for the next run.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := run(ctx, os.Args[2:], os.Stdout, os.Stderr, jit.NewClock())
			stop()
			os.Exit(code)
		}
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
