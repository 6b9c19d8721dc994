// Package cloudsim is a stateful, in-memory emulator of the subsets of Azure
// Resource Manager and Amazon EC2 that the provider uses, served over HTTP on
// loopback. The real SDK clients talk to it through endpoint overrides, so
// tests and the demo exercise the same request/response shapes, error codes
// and long-running-operation protocol as the real clouds.
//
// It is test and demo infrastructure only and is never linked into the
// provider binary.
package cloudsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune the emulator's timing.
type Options struct {
	// PollInterval is the Retry-After (seconds, rounded up) advertised on
	// long-running operations and the time an operation stays "InProgress"
	// before it completes. Zero completes operations on the first poll.
	PollInterval time.Duration
	// Identity is the caller identity returned by the Azure managed-identity
	// token endpoint and by sts:GetCallerIdentity.
	Identity Identity
	// Identities, when set, are handed out in turn by the managed-identity
	// endpoint: the n-th token it issues carries Identities[n mod len]. A
	// provider process asks for one token and keeps it, so each process
	// (each provider configuration of a run) acts as a person of its own:
	// how a benchmark has many requesters in one run.
	Identities []Identity
	// ListPageSize is how many resources one page of an ARM List or
	// ListAll holds before a nextLink leads to the next. Zero means
	// defaultListPageSize; tests set it low to exercise paging.
	ListPageSize int
}

// defaultListPageSize is the page size of ARM lists unless Options say
// otherwise. ARM does not document one for the network provider; pages
// are bounded, so clients must follow nextLink.
const defaultListPageSize = 100

func (s *Sim) listPageSize() int {
	if s.opts.ListPageSize > 0 {
		return s.opts.ListPageSize
	}
	return defaultListPageSize
}

// Identity is who the emulator says the caller is.
type Identity struct {
	// UPN and ObjectID become the upn and oid claims of issued Azure tokens.
	UPN      string `json:"upn"`
	ObjectID string `json:"oid"`
	// AWSAccount and AWSArn are returned by sts:GetCallerIdentity.
	AWSAccount string `json:"aws_account"`
	AWSArn     string `json:"aws_arn"`
}

// Sim is one emulated world of both clouds. All state is guarded by mu.
type Sim struct {
	opts Options

	mu     sync.Mutex
	azure  *azureState
	aws    *awsState
	calls  map[string]int
	flows  map[string]map[string]int // flow → operation → calls
	reads  map[string]int            // object → reads of it alone
	tokens int                       // tokens issued, for Identities
	// unthrottled turns ARM's throttling off (see SetThrottling).
	unthrottled bool
	faults      map[string]*Fault
	hooks       map[string][]callHook
	hookSeq     int
	rand        func() float64
	// inFlight counts the calls being handled (see WaitIdle).
	inFlight atomic.Int64
}

// New builds an emulator seeded from fx (which may be nil for an empty world).
func New(fx *Fixture, opts Options) (*Sim, error) {
	if fx == nil {
		fx = &Fixture{}
	}
	if opts.Identity.UPN == "" {
		opts.Identity = Identity{
			UPN:        "operator@example.com",
			ObjectID:   "00000000-0000-0000-0000-0000000000aa",
			AWSAccount: "123456789012",
			AWSArn:     "arn:aws:iam::123456789012:user/operator",
		}
	}
	s := &Sim{
		opts:   opts,
		calls:  map[string]int{},
		flows:  map[string]map[string]int{},
		reads:  map[string]int{},
		faults: map[string]*Fault{},
		hooks:  map[string][]callHook{},
		rand:   newRand(),
	}
	var err error
	if s.azure, err = newAzureState(fx.Azure); err != nil {
		return nil, fmt.Errorf("azure fixture: %w", err)
	}
	if s.aws, err = newAWSState(fx.AWS); err != nil {
		return nil, fmt.Errorf("aws fixture: %w", err)
	}
	return s, nil
}

// Fixture seeds the emulator. Each cloud's part is defined beside its handlers.
type Fixture struct {
	Azure AzureFixture `json:"azure"`
	AWS   AWSFixture   `json:"aws"`
}

// LoadFixture reads a JSON fixture file.
func LoadFixture(path string) (*Fixture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var fx Fixture
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fx); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &fx, nil
}

// ServeHTTP routes a request to the admin API, the Azure managed-identity
// token endpoint, ARM, or the AWS query protocol (EC2 and STS).
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/_admin/"):
		s.serveAdmin(w, r)
	case r.URL.Path == "/msi/token":
		s.serveManagedIdentityToken(w, r)
	case strings.HasPrefix(strings.ToLower(r.URL.Path), "/subscriptions/"):
		s.serveARM(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
		s.serveAWSQuery(w, r)
	default:
		http.Error(w, "cloudsim: no route for "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

// Server is an emulator listening on a loopback address.
type Server struct {
	*Sim
	URL      string
	listener net.Listener
	http     *http.Server
}

// Start serves sim on addr ("127.0.0.1:0" picks a free port).
func Start(sim *Sim, addr string) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &Server{Sim: sim, URL: "http://" + l.Addr().String(), listener: l, http: &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = srv.http.Serve(l) }()
	return srv, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.http.Close() }

// flowToken marks the provider's flow in a User-Agent: the product token
// jit-flow/<flow>, where flow is configure, request, audit or revoke.
const flowToken = "jit-flow/"

// NoFlow is the flow of calls whose User-Agent names none.
const NoFlow = ""

// flowOf is the flow a request names in its User-Agent, or NoFlow.
func flowOf(r *http.Request) string {
	for _, token := range strings.Fields(r.Header.Get("User-Agent")) {
		if flow, ok := strings.CutPrefix(token, flowToken); ok {
			return flow
		}
	}
	return NoFlow
}

// count records one call of op made in flow. Callers hold no lock.
func (s *Sim) count(op, flow string) {
	s.mu.Lock()
	s.calls[op]++
	if s.flows[flow] == nil {
		s.flows[flow] = map[string]int{}
	}
	s.flows[flow][op]++
	s.mu.Unlock()
}

// Calls returns how many times each operation was called.
func (s *Sim) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// CallsByFlow returns, for each flow named in the callers' User-Agent
// (NoFlow for calls naming none), how many times each operation was called.
func (s *Sim) CallsByFlow() map[string]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]int, len(s.flows))
	for flow, ops := range s.flows {
		out[flow] = maps.Clone(ops)
	}
	return out
}

// countRead records one read of a single object: an ARM resource GET
// (key: the lower-cased resource ID) or an EC2 Describe call naming the
// object (key: its ID). Callers hold no lock.
func (s *Sim) countRead(objects ...string) {
	s.mu.Lock()
	for _, o := range objects {
		s.reads[o]++
	}
	s.mu.Unlock()
}

// ObjectReads returns how many times each object was read: ARM GETs of one
// resource by its lower-cased ID (lists and polls of long-running
// operations are not reads of an object), and EC2 Describe calls by each
// instance, network interface or security group ID they name. A
// configuration read once per operation reads each object once.
func (s *Sim) ObjectReads() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.reads)
}

// ResetCalls zeroes the call counters, per operation, per flow and per object.
func (s *Sim) ResetCalls() {
	s.mu.Lock()
	s.calls = map[string]int{}
	s.flows = map[string]map[string]int{}
	s.reads = map[string]int{}
	s.mu.Unlock()
}

// SetPollInterval changes Options.PollInterval for the operations that
// start from now on: a benchmark seeds a world quickly, then measures at
// the latency it emulates.
func (s *Sim) SetPollInterval(d time.Duration) {
	s.mu.Lock()
	s.opts.PollInterval = d
	s.mu.Unlock()
}

// tokenIdentity is the identity the next issued token carries.
func (s *Sim) tokenIdentity() Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.opts.Identities) == 0 {
		return s.opts.Identity
	}
	id := s.opts.Identities[s.tokens%len(s.opts.Identities)]
	s.tokens++
	return id
}

// Operations lists every operation name the emulator serves, sorted.
func Operations() []string {
	ops := append(append([]string{}, armOperations...), awsOperations...)
	sort.Strings(ops)
	return ops
}

// Env is the environment the provider (and the SDKs' default credential
// chains) need to reach this emulator: a managed-identity endpoint the way
// Azure App Service exposes one and static AWS keys. The provider block's
// aws endpoint serves STS too, so no STS endpoint is set here.
func (s *Server) Env() [][2]string {
	return [][2]string{
		{"IDENTITY_ENDPOINT", s.URL + "/msi/token"},
		{"IDENTITY_HEADER", "cloudsim"},
		{"AWS_ACCESS_KEY_ID", "AKIACLOUDSIMEXAMPLE"},
		{"AWS_SECRET_ACCESS_KEY", "cloudsim-secret"},
		{"AWS_REGION", s.Sim.aws.region()},
		{"AWS_EC2_METADATA_DISABLED", "true"},
	}
}

// ProviderBlock is a provider "jit" block pointed at this emulator.
func (s *Server) ProviderBlock() string {
	return fmt.Sprintf(`provider "jit" {
  azure {
    subscription_id           = %q
    resource_manager_endpoint = %q
  }
  aws {
    region   = %q
    endpoint = %q
  }
}
`, s.Sim.azure.subscriptionID(), s.URL, s.Sim.aws.region(), s.URL)
}
