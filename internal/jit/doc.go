// Package jit is the cloud-neutral core of the provider: the policy model,
// its validation, ISO 8601 durations, address prefixes, the naming and
// ownership markers of the rules the provider writes, the evaluator of
// NSGs, the classic Azure Firewall and whole paths (evaluate.go), and the
// planners that decide which rules to add, keep and remove. It never imports a cloud SDK
// and never touches the network; time comes from a Clock.
package jit
