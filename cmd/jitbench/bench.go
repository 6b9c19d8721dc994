package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
)

// bench is what every scenario shares: the binaries and the CLI
// configuration that has OpenTofu start the provider through the wrapper.
type bench struct {
	work, tofu, provider, tofurc string
}

func newBench() (*bench, error) {
	tofu, err := filepath.Abs(*tofuFlag)
	if err != nil {
		return nil, err
	}
	provider, err := filepath.Abs(*providerFlag)
	if err != nil {
		return nil, err
	}
	for _, f := range []string{tofu, provider} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w (make build tofu)", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "jitbench-")
	if err != nil {
		return nil, err
	}
	plugins := filepath.Join(work, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(self, filepath.Join(plugins, "terraform-provider-jit")); err != nil {
		return nil, err
	}
	tofurc := filepath.Join(work, "tofurc")
	rc := fmt.Sprintf("provider_installation {\n  dev_overrides { \"jitaccess/jit\" = %q }\n  direct {}\n}\n", plugins)
	if err := os.WriteFile(tofurc, []byte(rc), 0o600); err != nil {
		return nil, err
	}
	return &bench{work: work, tofu: tofu, provider: provider, tofurc: tofurc}, nil
}

// world is one scenario's emulator and working directory.
type world struct {
	*bench
	sim     *cloudsim.Server
	dir     string
	usage   string
	env     []string
	runs    int
	http    *http.Server
	trace   *os.File
	started time.Time // when the measured command started
}

func (b *bench) world(dir string, fx *cloudsim.Fixture, opts cloudsim.Options) (*world, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sim, err := cloudsim.New(fx, opts)
	if err != nil {
		return nil, err
	}
	w := &world{bench: b, dir: dir, usage: filepath.Join(dir, "provider-usage")}
	srv, err := w.serve(sim)
	if err != nil {
		return nil, err
	}
	w.sim = srv
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ARM_") || strings.HasPrefix(name, "AZURE_") || strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "TF_") {
			continue // nothing may point the provider at a real cloud
		}
		w.env = append(w.env, kv)
	}
	for _, kv := range srv.Env() {
		w.env = append(w.env, kv[0]+"="+kv[1])
	}
	w.env = append(w.env, "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"TF_CLI_CONFIG_FILE="+b.tofurc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		envProvider+"="+b.provider, envUsage+"="+w.usage)
	w.fast()
	return w, nil
}

func (w *world) close() {
	_ = w.http.Close()
	if w.trace != nil {
		_ = w.trace.Close()
	}
}

// serve starts the emulator on loopback; with -trace, every request is
// logged, with its time since the measured command started, to trace.log.
func (w *world) serve(sim *cloudsim.Sim) (*cloudsim.Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	handler := http.Handler(sim)
	if *traceFlag {
		if w.trace, err = os.Create(filepath.Join(w.dir, "trace.log")); err != nil {
			return nil, err
		}
		var mu sync.Mutex
		handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sim.ServeHTTP(rw, r)
			mu.Lock()
			fmt.Fprintf(w.trace, "%8.3f %8.3f %s %s\n", start.Sub(w.started).Seconds(), time.Since(w.started).Seconds(), r.Method, r.URL.Path)
			mu.Unlock()
		})
	}
	w.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = w.http.Serve(l) }()
	return &cloudsim.Server{Sim: sim, URL: "http://" + l.Addr().String()}, nil
}

// fast seeds: no latency, no throttling, operations done at once.
func (w *world) fast() {
	w.sim.ClearFaults()
	w.sim.SetPollInterval(0)
	w.sim.SetThrottling(false)
}

// slow is the emulated cloud the measurements run against.
func (w *world) slow() {
	w.sim.ClearFaults()
	for _, op := range cloudsim.Operations() {
		latency := time.Duration(0)
		switch {
		case isRead(op):
			latency = *readLatency
		case !strings.Contains(op, "."): // EC2 writes answer when done
			latency = *writeLatency
		}
		if latency > 0 {
			w.sim.InjectFault(cloudsim.Fault{Operation: op, Latency: latency})
		}
	}
	w.sim.SetPollInterval(*writeLatency)
	w.sim.SetThrottling(true)
}

func isRead(op string) bool {
	return strings.HasSuffix(op, ".Get") || strings.HasSuffix(op, ".List") || strings.HasSuffix(op, ".ListAll") ||
		strings.HasPrefix(op, "Describe") || op == "GetCallerIdentity" || op == "ManagedIdentity.GetToken"
}

// configure writes the configuration OpenTofu runs.
func (w *world) configure(config string) error {
	return os.WriteFile(filepath.Join(w.dir, "main.tf"), []byte(config), 0o600)
}

// tofu runs OpenTofu in the world's directory.
func (w *world) tofu(args ...string) (string, error) {
	cmd := exec.Command(w.bench.tofu, args...)
	cmd.Dir, cmd.Env = w.dir, w.env
	if *tfLog != "" {
		w.runs++
		cmd.Env = append(slices.Clone(w.env), "TF_LOG="+*tfLog, fmt.Sprintf("TF_LOG_PATH=%s/tofu-%d.log", w.dir, w.runs))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("tofu %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 40))
	}
	return out.String(), nil
}

// row is one measured command.
type row struct {
	name, title string
	wall        time.Duration
	bound       time.Duration
	boundWhy    string
	calls       map[string]int
	reads       map[string]int
	cpu         time.Duration
	rssKiB      int64
	processes   int
	notes       []string
	err         error
	// walls are every run's wall time, when there were several.
	walls []time.Duration
}

// fastest keeps, of each row of several runs of a scenario, its fastest
// run, noting every run's wall time: the machine is shared, so the
// fastest run is the closest to what the provider itself costs.
func fastest(runs [][]*row) []*row {
	if len(runs) == 0 {
		return nil
	}
	var out []*row
	for i, first := range runs[0] {
		best := first
		var walls []time.Duration
		for _, run := range runs {
			if i < len(run) && run[i].name == first.name {
				walls = append(walls, run[i].wall)
				if run[i].err == nil && (best.err != nil || run[i].wall < best.wall) {
					best = run[i]
				}
			}
		}
		if len(walls) > 1 {
			best.walls = walls
		}
		out = append(out, best)
	}
	return out
}

// measure runs a command at the emulated latency, from full throttling
// buckets, and records what it cost.
func (w *world) measure(name, title string, args ...string) (*row, string) {
	w.slow()
	w.sim.ResetCalls()
	_ = os.Remove(w.usage)
	start := time.Now()
	w.started = start
	if w.trace != nil {
		fmt.Fprintf(w.trace, "== %s: tofu %s\n", name, strings.Join(args, " "))
	}
	out, err := w.tofu(args...)
	r := &row{name: name, title: title, wall: time.Since(start), calls: w.sim.Calls(), reads: w.sim.ObjectReads(), err: err}
	w.fast()
	r.cpu, r.rssKiB, r.processes = providerUsage(w.usage)
	return r, out
}

// providerUsage sums the CPU time of the provider processes a command
// started and takes the largest peak RSS among them.
func providerUsage(file string) (cpu time.Duration, rssKiB int64, processes int) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, 0
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var user, sys, rss int64
		if _, err := fmt.Sscan(s.Text(), &user, &sys, &rss); err == nil {
			cpu += time.Duration(user+sys) * time.Microsecond
			rssKiB = max(rssKiB, rss)
			processes++
		}
	}
	return cpu, rssKiB, processes
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
