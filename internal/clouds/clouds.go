// Package clouds is the one list of the clouds the provider and the
// commands know: each backend package's registration. A new cloud is its
// package and one line here; the provider blocks, the commands' flags and
// the machine ID validation follow from it.
package clouds

import (
	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

// All are the registered clouds, in the order the provider documents them.
var All = []engine.Cloud{
	azure.Cloud,
	aws.Cloud,
}
