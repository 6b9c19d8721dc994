//go:build tools

// Package tools pins the versions of the tools the GNUmakefile runs with
// `go run`, so every machine generates docs and lints with the same ones.
package tools

import (
	_ "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs"
	_ "gotest.tools/gotestsum"
)
