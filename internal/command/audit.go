package command

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/clouds"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// auditUserAgent tells the clouds' logs who called.
const auditUserAgent = "jit-audit"

// AuditColumns are the CSV columns of audit, in order. The usage text and
// docs/guides/audit.md describe each.
var AuditColumns = []string{
	"cloud", "virtual_machine_id", "virtual_machine_name", "location", "policy", "locked_ports",
	"request_id", "port", "protocol", "source", "start_time_utc", "end_time_utc", "status",
	"requestor", "on_behalf_of", "justification", "record", "vouched", "targets", "names",
}

const auditUsage = `Usage: terraform-provider-jit audit [flags]

Reports, from the cloud alone (no Terraform state), every virtual machine
of the scanned scopes, the JIT policy covering it, and every grant the
cloud still shows on it, active or expired, with who asked, for whom, why,
from where and when. Read-only. Azure is scanned when a subscription is
given, AWS when a region (or profile or endpoint) is. Exit code: 0 all
read, 1 some part of a scope could not be read (what was read is still
printed; the errors go to stderr, and into the JSON), 2 usage error.

CSV (the default) has a header and one row per grant, that is per request
and port, however many rules hold it; a machine without grants has one row
with the grant columns empty. Columns:

  cloud                azure or aws
  virtual_machine_id   Azure VM resource ID or EC2 instance ID; empty for a
                       grant whose machine was not found in the scope
  virtual_machine_name VM name, or the instance's Name tag
  location             Azure region, or the AWS region scanned
  policy               the jit_policy covering the machine (its jit-policy tag)
  locked_ports         the policy's ports: PORT/PROTOCOL:MAX_DURATION:SOURCES,
                       separated by spaces, sources by commas
  request_id           the request (its start time and a random suffix)
  port, protocol       the granted port: 22 and TCP, UDP or *
  source               the prefix the grant lets in (the requester's: behind
                       an Azure Firewall, its DNAT rule's source)
  start_time_utc       when the request was made (RFC 3339)
  end_time_utc         when the grant ends or ended (RFC 3339)
  status               active, or expired (the rules are still there:
                       revoke-expired removes them)
  requestor            the identity that made the request (an Azure user
                       principal name, app:ID or oid:ID, an AWS ARN)
  on_behalf_of         the person it acted for, if any (a pull request's author)
  justification        why
  record               whole: requestor, on_behalf_of and justification are
                       as recorded; abbreviated: the grant predates records
                       and only its marker's shortened fields are known. A
                       value longer than a tag's 256 characters is recorded
                       cut, visibly: its beginning, "…sha256:" and the
                       SHA-256 of the whole, to check against another copy.
  vouched              false for a rule or group named or tagged as a grant
                       whose marker is not a grant's: nobody vouches for it
  targets              the NSGs, Azure Firewalls or security groups holding
                       the grant, separated by spaces
  names                the rules' (or the security group's) names there, in
                       the same order

JSON (-format json) holds the same, nested: machines, each with its policy
and grants, and the scanned scopes and errors.

Flags:
`

// Audit runs the audit command with args (those after the subcommand's
// name) and returns the exit code.
func Audit(ctx context.Context, args []string, stdout, stderr io.Writer, clock jit.Clock) int {
	var format string
	cfg, code := parseScopeFlags("audit", auditUsage, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "csv", "output format: csv or json")
	})
	if code >= 0 {
		return code
	}
	if format != "csv" && format != "json" {
		fmt.Fprintf(stderr, "audit: -format must be csv or json, not %q\n", format)
		return ExitUsage
	}
	backends, code := cfg.backends(ctx, "audit", auditUserAgent, stderr)
	if code >= 0 {
		return code
	}
	ctx, cancel := context.WithTimeout(engine.WithFlow(ctx, engine.FlowAudit), cfg.timeout)
	defer cancel()
	report := NewAuditReport(engine.New(clock, backends, clouds.All...).Audit(ctx))
	for _, e := range report.Errors {
		fmt.Fprintf(stderr, "error: %s %s: %s\n", e.Cloud, e.Scope, e.Error)
	}
	var err error
	if format == "json" {
		out := json.NewEncoder(stdout)
		out.SetIndent("", "  ")
		err = out.Encode(report)
	} else {
		err = report.WriteCSV(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "audit: writing the report: %v\n", err)
		return ExitFailed
	}
	if len(report.Errors) > 0 {
		return ExitFailed
	}
	return ExitOK
}

// AuditReport is what audit prints as JSON.
type AuditReport struct {
	// Now is the time grants were judged active or expired against.
	Now      string           `json:"now"`
	Scopes   []Scope          `json:"scopes"`
	Machines []AuditedMachine `json:"machines"`
	Errors   []AuditError     `json:"errors"`
}

// AuditedMachine is one machine of the report.
type AuditedMachine struct {
	Cloud       string         `json:"cloud"`
	ID          string         `json:"virtual_machine_id"`
	Name        string         `json:"virtual_machine_name"`
	Location    string         `json:"location"`
	Policy      string         `json:"policy"`
	PolicyError string         `json:"policy_error,omitempty"`
	LockedPorts []LockedPort   `json:"locked_ports"`
	Grants      []AuditedGrant `json:"grants"`
}

// LockedPort is one port of a machine's policy.
type LockedPort struct {
	Number                       int      `json:"number"`
	Protocol                     string   `json:"protocol"`
	MaxRequestAccessDuration     string   `json:"max_request_access_duration"`
	AllowedSourceAddressPrefixes []string `json:"allowed_source_address_prefixes"`
}

// AuditedGrant is one port of one request on the machine.
type AuditedGrant struct {
	Request       string   `json:"request_id"`
	Port          int      `json:"port"`
	Protocol      string   `json:"protocol"`
	Source        string   `json:"source"`
	StartTimeUTC  string   `json:"start_time_utc"`
	EndTimeUTC    string   `json:"end_time_utc"`
	Status        string   `json:"status"`
	Requestor     string   `json:"requestor"`
	OnBehalfOf    string   `json:"on_behalf_of"`
	Justification string   `json:"justification"`
	Record        string   `json:"record"`
	Vouched       bool     `json:"vouched"`
	Targets       []string `json:"targets"`
	Names         []string `json:"names"`
}

// AuditError is a part of a scope that could not be read.
type AuditError struct {
	Cloud string `json:"cloud"`
	Scope string `json:"scope"`
	Error string `json:"error"`
}

// Status values of a grant in the report.
const (
	StatusActive  = "active"
	StatusExpired = "expired"
)

// Record values of a grant in the report.
const (
	RecordWhole       = "whole"
	RecordAbbreviated = "abbreviated"
)

// NewAuditReport renders what the engine found.
func NewAuditReport(a engine.Audit) AuditReport {
	r := AuditReport{Now: a.Now.Format(time.RFC3339), Scopes: []Scope{}, Machines: []AuditedMachine{}, Errors: []AuditError{}}
	for _, s := range a.Scopes {
		r.Scopes = append(r.Scopes, Scope(s))
	}
	for _, e := range a.Errors {
		r.Errors = append(r.Errors, AuditError{Cloud: e.Cloud, Scope: e.Scope, Error: e.Err.Error()})
	}
	for _, m := range a.Machines {
		am := AuditedMachine{Cloud: m.Cloud, ID: m.ID, Name: m.Name, Location: m.Location, Policy: m.Policy, PolicyError: m.PolicyError,
			LockedPorts: []LockedPort{}, Grants: []AuditedGrant{}}
		for _, p := range m.Ports {
			am.LockedPorts = append(am.LockedPorts, LockedPort{Number: p.Number, Protocol: string(p.Protocol),
				MaxRequestAccessDuration: p.MaxRequestAccessDuration.String(), AllowedSourceAddressPrefixes: p.AllowedSourcePrefixes})
		}
		for _, g := range m.Grants {
			ag := AuditedGrant{Request: g.Request, Port: g.Port.Number, Protocol: string(g.Port.Protocol), Source: g.Source,
				EndTimeUTC: utc(g.End), StartTimeUTC: utc(g.Start), Status: StatusActive,
				Requestor: g.Record.Requestor, OnBehalfOf: g.Record.OnBehalfOf, Justification: g.Record.Justification,
				Record: RecordAbbreviated, Vouched: g.Vouched, Targets: g.Targets, Names: g.Names}
			if g.Status == jit.GrantExpired {
				ag.Status = StatusExpired
			}
			if g.Recorded {
				ag.Record = RecordWhole
			}
			am.Grants = append(am.Grants, ag)
		}
		r.Machines = append(r.Machines, am)
	}
	return r
}

func utc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// WriteCSV writes the report as CSV: AuditColumns, then one row per grant
// and one per machine without grants.
func (r AuditReport) WriteCSV(w io.Writer) error {
	out := csv.NewWriter(w)
	if err := out.Write(AuditColumns); err != nil {
		return err
	}
	for _, m := range r.Machines {
		var ports []string
		for _, p := range m.LockedPorts {
			ports = append(ports, fmt.Sprintf("%d/%s:%s:%s", p.Number, p.Protocol, p.MaxRequestAccessDuration, strings.Join(p.AllowedSourceAddressPrefixes, ",")))
		}
		machine := []string{m.Cloud, m.ID, m.Name, m.Location, m.Policy, strings.Join(ports, " ")}
		if len(m.Grants) == 0 {
			if err := out.Write(append(machine, make([]string, len(AuditColumns)-len(machine))...)); err != nil {
				return err
			}
		}
		for _, g := range m.Grants {
			row := append(append([]string{}, machine...),
				g.Request, strconv.Itoa(g.Port), g.Protocol, g.Source, g.StartTimeUTC, g.EndTimeUTC, g.Status,
				csvSafe(g.Requestor), csvSafe(g.OnBehalfOf), csvSafe(g.Justification), g.Record, strconv.FormatBool(g.Vouched),
				strings.Join(g.Targets, " "), strings.Join(g.Names, " "))
			if err := out.Write(row); err != nil {
				return err
			}
		}
	}
	out.Flush()
	return out.Error()
}

// csvSafe keeps free text that others wrote from being run as a formula
// by a spreadsheet opening the CSV: a leading =, +, - or @ is quoted with
// a "'", as OWASP advises. The JSON keeps the text as it is.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
