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
	if !debug {
		quietUnlessHeard()
	}

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address:         "registry.terraform.io/jitaccess/jit",
		Debug:           debug,
		ProtocolVersion: 6,
	})
	if err != nil {
		log.Fatal(err)
	}
}

// quietUnlessHeard turns the plugin SDK's and the provider's logs off when
// OpenTofu or Terraform would drop them. They show a provider's logs only
// with TF_LOG or TF_LOG_PROVIDER set, and start the provider with their own
// environment; without either, the SDK would still format every trace line
// of every call for nothing: a fifth of the provider's CPU on a plan of
// 500 resources. A panic is shown whatever the logs: it is not a log line.
func quietUnlessHeard() {
	if os.Getenv("TF_LOG") != "" || os.Getenv("TF_LOG_PROVIDER") != "" {
		return
	}
	for _, v := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK", "TF_LOG_PROVIDER_JIT"} {
		if os.Getenv(v) == "" {
			_ = os.Setenv(v, "off")
		}
	}
}
