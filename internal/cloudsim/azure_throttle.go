package cloudsim

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// armBucket is one of ARM's request limits per subscription: a bucket of
// tokens, one spent per request and refilled at a steady rate
// (aka.ms/arm-throttling). A request that finds the bucket empty is
// refused with 429 and told when a token will be there.
type armBucket struct {
	kind      string // "reads" or "writes", as ARM names them in headers and errors
	size      float64
	perSecond float64
}

var (
	armReadBucket  = armBucket{"reads", 250, 25}
	armWriteBucket = armBucket{"writes", 200, 10}
)

// tokens is a bucket's content at a time.
type tokens struct {
	left float64
	at   time.Time
}

// throttle spends a token of the request's bucket in its subscription and
// sets the header that says how many are left; with none left, the
// request is refused as ARM refuses it.
func (c *armCall) throttle(h http.Header) *armError {
	if c.sim.unthrottled {
		return nil
	}
	bucket := armWriteBucket
	if c.r.Method == http.MethodGet || c.r.Method == http.MethodHead {
		bucket = armReadBucket
	}
	key := strings.ToLower(c.sub) + "/" + bucket.kind
	t, seen := c.a.buckets[key]
	if !seen {
		t = tokens{bucket.size, c.now}
	}
	t.left = min(bucket.size, t.left+c.now.Sub(t.at).Seconds()*bucket.perSecond)
	t.at = c.now
	header := "x-ms-ratelimit-remaining-subscription-" + bucket.kind
	if t.left < 1 {
		c.a.buckets[key] = t
		wait := time.Duration((1 - t.left) / bucket.perSecond * float64(time.Second))
		e := newARMError(http.StatusTooManyRequests, "SubscriptionRequestsThrottled",
			"Number of '%s' requests for subscription '%s' actor '%s' on scope 'subscription' exceeded. Please try again after '%d' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling",
			strings.TrimSuffix(bucket.kind, "s"), c.sub, c.sim.opts.Identity.ObjectID, int(math.Ceil(wait.Seconds())))
		e.header = http.Header{}
		e.header.Set(header, "0")
		announceRetryAfter(e.header, wait, []string{RetryAfterSeconds}, c.now)
		return e
	}
	t.left--
	c.a.buckets[key] = t
	h.Set(header, strconv.Itoa(int(t.left)))
	return nil
}

// SetThrottling turns ARM's throttling off or on again; turned on, every
// bucket starts full, as after a quiet while. A benchmark seeds its world
// unthrottled, then measures from where a fresh run starts.
func (s *Sim) SetThrottling(on bool) {
	s.mu.Lock()
	s.unthrottled = !on
	s.azure.buckets = map[string]tokens{}
	s.mu.Unlock()
}
