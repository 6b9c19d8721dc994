// Package command holds the subcommands of the provider binary, for cron
// jobs, scheduled pipelines and auditors. Each takes its arguments, its
// output streams and a clock, and returns the process exit code, so tests
// run it in process with a fake clock against the emulator.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/clouds"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Exit codes of revoke-expired and audit.
const (
	ExitOK     = 0 // every expired grant found is gone
	ExitFailed = 1 // some grant or scope failed; the rest was still done
	ExitUsage  = 2 // bad flags or configuration; nothing was touched
)

// Kinds of grant in the summary.
const (
	KindNSGRule       = engine.KindNSGRule       // an inbound Allow rule of an NSG
	KindFirewallGrant = engine.KindFirewallGrant // the NAT and network rule collections of one grant on an Azure Firewall
	KindSecurityGroup = engine.KindSecurityGroup // an EC2 security group attached to ENIs
	KindGrantRecord   = engine.KindGrantRecord   // the tags recording a request on an Azure VM
)

// Summary is what revoke-expired prints on stdout, as JSON.
type Summary struct {
	// Now is the time expiry was judged against (RFC 3339, UTC).
	Now string `json:"now"`
	// Scopes are what was scanned.
	Scopes []Scope `json:"scopes"`
	// Revoked are the expired grants now gone, sorted by cloud, target, name.
	Revoked []RevokedGrant `json:"revoked"`
	// Live counts the grants found that have not expired yet.
	Live int `json:"live"`
	// Errors are the scopes that could not be scanned and the grants that
	// could not be revoked; non-empty means exit code 1.
	Errors []GrantError `json:"errors"`
	// RecordsRemoved are the records of requests (kind grant-record, kept
	// on Azure VMs) removed because the request can no longer be open and
	// no rule of it is left.
	RecordsRemoved []RevokedGrant `json:"records_removed"`
}

// Scope is one scanned subscription (or resource group) or region.
type Scope engine.Scope

// RevokedGrant is one expired grant removed (or found already gone when
// removing it).
type RevokedGrant struct {
	Cloud string `json:"cloud"`
	Kind  string `json:"kind"`
	// Target is the NSG or firewall holding the grant, or the grant's
	// security group.
	Target string `json:"target"`
	// Name is the rule's or collections' name, or the security group's.
	Name       string `json:"name"`
	EndTimeUTC string `json:"end_time_utc"`
	// Requestor, OnBehalfOf and Justification are as the cloud records
	// them: whole, or cut visibly ("…sha256:<hash of the whole>") where a
	// tag's 256 characters forced it; for a grant older than records, the
	// marker's abbreviations.
	Requestor     string `json:"requestor"`
	OnBehalfOf    string `json:"on_behalf_of,omitempty"`
	Justification string `json:"justification,omitempty"`
	// Request is the request ID: an EC2 grant group's jit-request tag;
	// on Azure, traced from the rule's name to a VM of the scanned scope.
	Request string `json:"request,omitempty"`
	// Ports, for an EC2 grant group whose ports end apart, are the ports
	// whose rules were revoked from it ("3389/TCP"): the group and its
	// other ports stay until their own end. Absent, the whole grant went.
	Ports []string `json:"ports,omitempty"`
	// Unfit says why a grant was removed before its end: it cannot be
	// any policy's (it names no request, or ends later after its start
	// than any policy allows).
	Unfit string `json:"unfit,omitempty"`
}

// GrantError is a scope or grant that failed.
type GrantError struct {
	Cloud  string `json:"cloud"`
	Kind   string `json:"kind,omitempty"`
	Target string `json:"target"`
	Name   string `json:"name,omitempty"`
	Error  string `json:"error"`
}

// userAgent tells the clouds' logs who called: short, as azcore keeps 24
// characters of an application ID.
const userAgent = "jit-revoke-expired"

const revokeUsage = `Usage: terraform-provider-jit revoke-expired [flags]

Removes every expired JIT grant in the scanned scopes, found from the
markers the grants carry in the cloud (no Terraform state needed), and
prints a JSON summary on stdout. Safe to run again and concurrently.
Azure is scanned when a subscription is given, AWS when a region (or
profile or endpoint) is. Exit code: 0 all done, 1 something failed (the
rest was still done), 2 usage error.

Flags:
`

// RevokeExpired runs the revoke-expired command with args (those after
// the subcommand's name) and returns the exit code.
func RevokeExpired(ctx context.Context, args []string, stdout, stderr io.Writer, clock jit.Clock) int {
	cfg, code := parseScopeFlags("revoke-expired", revokeUsage, args, stderr, nil)
	if code >= 0 {
		return code
	}
	backends, code := cfg.backends(ctx, "revoke-expired", userAgent, stderr)
	if code >= 0 {
		return code
	}
	ctx, cancel := context.WithTimeout(engine.WithFlow(ctx, engine.FlowRevoke), cfg.timeout)
	defer cancel()
	summary := summarize(engine.New(clock, backends, clouds.All...).RevokeExpired(ctx), clock.Now(), stderr)
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(summary); err != nil {
		fmt.Fprintf(stderr, "revoke-expired: writing the summary: %v\n", err)
		return ExitFailed
	}
	if len(summary.Errors) > 0 {
		return ExitFailed
	}
	return ExitOK
}

// scopeConfig is what the scanning commands share: the clouds to scan,
// each with its settings from the flags (or their environment variables),
// and how long to go on.
type scopeConfig struct {
	scan     []engine.Cloud
	settings map[string]map[string]*string // by cloud, by setting
	timeout  time.Duration
}

// parseScopeFlags parses the flags of every registered cloud, the timeout
// and those extra adds, for the command name; it returns the
// configuration, and an exit code >= 0 when the command must stop there.
func parseScopeFlags(name, usage string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (scopeConfig, int) {
	cfg := scopeConfig{settings: map[string]map[string]*string{}}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	for _, c := range clouds.All {
		cfg.settings[c.Name] = map[string]*string{}
		for _, s := range c.Settings {
			if s.Flag != "" {
				cfg.settings[c.Name][s.Name] = fs.String(s.Flag, s.FromEnv(), s.Usage)
			}
		}
	}
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Minute, "give up on what is left after this long (retries included)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, ExitOK
		}
		return cfg, ExitUsage // the flag package has said which flag
	}
	fail := func(format string, a ...any) (scopeConfig, int) {
		fmt.Fprintf(stderr, name+": "+format+"\n", a...)
		return cfg, ExitUsage
	}
	switch {
	case fs.NArg() > 0:
		return fail("unexpected argument %q: %s takes flags only", fs.Arg(0), name)
	case cfg.timeout <= 0:
		return fail("-timeout must be positive, not %s", cfg.timeout)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var hints []string
	for _, c := range clouds.All {
		var selector, needy string // the cloud's first selecting flag; a flag given that needs one
		selected := false
		for _, s := range c.Settings {
			switch {
			case s.Flag == "":
			case s.Selects && *cfg.settings[c.Name][s.Name] != "":
				selected = true
			case s.Selects && selector == "":
				selector = "-" + s.Flag
				if s.Env != "" {
					selector += " (or " + s.Env + ")"
				}
			case given[s.Flag] && *cfg.settings[c.Name][s.Name] != "" && needy == "":
				needy = "-" + s.Flag
			}
		}
		switch {
		case selected:
			cfg.scan = append(cfg.scan, c)
		case needy != "":
			return fail("%s needs %s to scan %s", needy, selector, c.Title)
		default:
			hints = append(hints, selector+" for "+c.Title)
		}
	}
	if len(cfg.scan) == 0 {
		return fail("nothing to scan: set %s", strings.Join(hints, " or "))
	}
	return cfg, -1
}

// backends connects the clouds the configuration scans; an exit code >= 0
// when the configuration cannot be used.
func (cfg scopeConfig) backends(ctx context.Context, name, userAgent string, stderr io.Writer) ([]engine.Backend, int) {
	var backends []engine.Backend
	for _, c := range cfg.scan {
		settings := map[string]string{}
		for setting, v := range cfg.settings[c.Name] {
			settings[setting] = *v
		}
		b, err := c.Connect(ctx, settings, userAgent)
		if err != nil {
			var refused *engine.SettingError
			if errors.As(err, &refused) {
				fmt.Fprintf(stderr, "%s: -%s: %v\n", name, flagOf(c, refused.Setting), refused.Err)
			} else {
				fmt.Fprintf(stderr, "%s: %s configuration: %v\n", name, c.Title, err)
			}
			return nil, ExitUsage
		}
		backends = append(backends, b)
	}
	return backends, -1
}

// flagOf is the flag of a cloud's setting.
func flagOf(c engine.Cloud, setting string) string {
	for _, s := range c.Settings {
		if s.Name == setting && s.Flag != "" {
			return s.Flag
		}
	}
	return setting
}

// summarize turns a sweep into the printed summary, reporting on stderr
// what was revoked, skipped or failed.
func summarize(sw engine.Sweep, now time.Time, stderr io.Writer) Summary {
	s := Summary{Now: now.UTC().Format(time.RFC3339), Scopes: []Scope{}, Revoked: []RevokedGrant{}, Live: sw.Live, Errors: []GrantError{}, RecordsRemoved: []RevokedGrant{}}
	for _, sc := range sw.Scopes {
		s.Scopes = append(s.Scopes, Scope(sc))
	}
	for _, g := range sw.Revoked {
		r := RevokedGrant{Cloud: g.Cloud, Kind: g.Kind, Target: g.Target, Name: g.Name, EndTimeUTC: g.Marker.End.Format(time.RFC3339),
			Requestor: g.Requestor(), Justification: g.Marker.Justification, Request: g.Request}
		if g.Record != nil {
			r.OnBehalfOf, r.Justification = g.Record.OnBehalfOf, g.Record.Justification
		}
		for _, p := range g.Ports {
			r.Ports = append(r.Ports, fmt.Sprintf("%d/%s", p.Number, p.Protocol))
		}
		r.Unfit = g.Unfit
		if g.Kind == KindGrantRecord {
			r.EndTimeUTC = ""
			s.RecordsRemoved = append(s.RecordsRemoved, r)
			fmt.Fprintf(stderr, "removed the record of request %s from %s\n", r.Request, r.Target)
			continue
		}
		s.Revoked = append(s.Revoked, r)
		by := r.Requestor
		if r.OnBehalfOf != "" {
			by += " on behalf of " + r.OnBehalfOf
		}
		switch {
		case r.Unfit != "":
			fmt.Fprintf(stderr, "revoked %s %s %s in %s (no policy's grant: %s; requested by %s)\n", r.Cloud, r.Kind, r.Name, r.Target, r.Unfit, by)
		case len(r.Ports) > 0:
			fmt.Fprintf(stderr, "revoked ports %s of %s %s %s in %s (ended %s, requested by %s); its other ports stay until their end\n",
				strings.Join(r.Ports, ", "), r.Cloud, r.Kind, r.Name, r.Target, r.EndTimeUTC, by)
		default:
			fmt.Fprintf(stderr, "revoked %s %s %s in %s (ended %s, requested by %s)\n", r.Cloud, r.Kind, r.Name, r.Target, r.EndTimeUTC, by)
		}
	}
	for _, g := range sw.Skipped {
		fmt.Fprintf(stderr, "warning: %s %s %s in %s is named or tagged as a JIT grant but does not carry a grant marker throughout; left alone\n", g.Cloud, g.Kind, g.Name, g.Target)
	}
	for _, g := range sw.Errors {
		e := GrantError{Cloud: g.Cloud, Kind: g.Kind, Target: g.Target, Name: g.Name, Error: g.Err.Error()}
		s.Errors = append(s.Errors, e)
		fmt.Fprintf(stderr, "error: %s %s: %s\n", e.Cloud, e.Target, e.Error)
	}
	return s
}
