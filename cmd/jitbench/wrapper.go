package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// OpenTofu starts the provider through this very binary, installed under
// the provider's name in the dev_overrides directory: it runs the real
// provider as its child, with the same arguments, standard streams and
// environment (the plugin handshake passes straight through), and when it
// exits appends the child's resource usage to a file: the provider's own
// CPU time and peak RSS, apart from OpenTofu's and the emulator's.
const (
	envProvider = "JITBENCH_PROVIDER" // the real provider binary
	envUsage    = "JITBENCH_USAGE"    // where to append "user_µs system_µs maxrss_KiB"
)

func wrapProvider() int {
	cmd := exec.Command(os.Getenv(envProvider), os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Should OpenTofu kill the wrapper, the provider goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "jitbench wrapper:", err)
		return 1
	}
	go func() {
		for s := range signals {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		if f, ferr := os.OpenFile(os.Getenv(envUsage), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); ferr == nil {
			fmt.Fprintf(f, "%d %d %d\n", time.Duration(u.Utime.Nano()).Microseconds(), time.Duration(u.Stime.Nano()).Microseconds(), u.Maxrss)
			_ = f.Close()
		}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}
