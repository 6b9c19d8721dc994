package azure

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/jitaccess/terraform-provider-jit/internal/retry"
)

// pollFrequency is how often a long-running operation is polled when ARM
// sends no Retry-After.
const pollFrequency = time.Second

// await waits for a write's long-running operation to end. The first poll
// waits for the Retry-After the write's own answer (initial) announced. A
// poll that fails for a reason worth another attempt (a throttled GET, a
// dropped connection) is repeated on its own, never the write that started
// the operation. An operation that ended Succeeded needs no final GET: the
// write's answer already was the resource as the operation leaves it,
// which callers keep in the read cache. An operation that ended Failed is
// the error, for the write's own retry to judge.
func await[T any](ctx context.Context, poller *runtime.Poller[T], initial *http.Response) error {
	last, wait := initial, retryAfter(initial)
	for !poller.Done() {
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			}
		}
		var resp *http.Response
		if err := withRetry(ctx, func(ctx context.Context) (err error) {
			resp, err = poller.Poll(ctx)
			return err
		}); err != nil {
			return err
		}
		last, wait = resp, pollFrequency
		if after := retryAfter(resp); after > 0 {
			wait = after
		}
	}
	if succeeded(last) {
		return nil
	}
	// The end is Failed (the result is its error, with no call), or not
	// known from the answers: then the result is one more GET, retried on
	// its own when it fails as a call (throttled, dropped).
	return retry.Do(ctx, retry.DefaultBackoff, func(err error) (bool, time.Duration) {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode < http.StatusTooManyRequests {
			return false, 0
		}
		return classify(err)
	}, func(ctx context.Context) error {
		_, err := poller.Result(ctx)
		return err
	})
}

// succeeded tells whether an operation's last answer says it succeeded: a
// poll's status, or the provisioning state of a write answered at once.
func succeeded(resp *http.Response) bool {
	if resp == nil {
		return false
	}
	var body struct {
		Status     string `json:"status"`
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	if err := runtime.UnmarshalAsJSON(resp, &body); err != nil {
		return false
	}
	return strings.EqualFold(cmp.Or(body.Status, body.Properties.ProvisioningState), "Succeeded")
}

// answer decodes a write's answer: the resource as the write left it.
func answer[T any](resp *http.Response) (T, bool) {
	var v T
	if resp == nil || resp.StatusCode == http.StatusNoContent {
		return v, false
	}
	return v, runtime.UnmarshalAsJSON(resp, &v) == nil
}

// retryableCodes are ARM error codes that mean "try again later": an NSG or
// firewall accepts one write at a time, ARM throttles writes, and servers
// fail transiently.
var retryableCodes = map[string]bool{
	"AnotherOperationInProgress":          true,
	"RetryableErrorDueToAnotherOperation": true,
	"RetryableError":                      true,
	"TooManyRequests":                     true,
	// A long-running operation that ended Failed on the server's side
	// carries these in a 200 poll response: the whole write is tried again.
	"InternalServerError": true,
	"ServiceUnavailable":  true,
	"GatewayTimeout":      true,
}

// classify decides whether an ARM failure is worth another attempt. Writes
// are PUTs and DELETEs of whole rules, so repeating one after a dropped
// connection is safe: the retry converges on the same result.
func classify(err error) (bool, time.Duration) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false, 0
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		after := retryAfter(re.RawResponse)
		switch {
		case retryableCodes[re.ErrorCode]:
			return true, after
		case re.StatusCode == http.StatusTooManyRequests, re.StatusCode >= 500:
			return true, after
		case re.StatusCode == http.StatusPreconditionFailed:
			// Another writer changed the resource since it was read for a
			// read-merge-write: read, merge and write again.
			return true, 0
		}
		return false, 0
	}
	// No response at all: the connection failed or dropped, possibly after
	// the write was applied. Credential failures are not retried.
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), 0
}

func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	return retry.After(resp.Header, time.Now())
}

// withRetry runs an ARM call until it succeeds, fails for good, or ctx
// (the resource's timeout) ends. It is the only retry: the SDK's own is
// off (see New), so attempts never multiply.
func withRetry(ctx context.Context, op func(context.Context) error) error {
	return describe(retry.Do(ctx, retry.DefaultBackoff, classify, op))
}

// armError is an ARM failure told in one line, "Code: message (HTTP 404)",
// instead of the SDK's multi-line dump of the request and body; it still
// unwraps to the SDK's error, so callers test codes as before.
type armError struct {
	*azcore.ResponseError
	message string
}

func (e *armError) Error() string { return e.message }
func (e *armError) Unwrap() error { return e.ResponseError }

// describe shortens ARM failures in err to what an operator needs: the
// error code and message ARM sent, and the HTTP status.
func describe(err error) error {
	var re *azcore.ResponseError
	if err == nil || !errors.As(err, &re) {
		return err
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if re.RawResponse != nil {
		if b, rerr := runtime.Payload(re.RawResponse); rerr == nil {
			_ = json.Unmarshal(b, &body)
		}
	}
	status := fmt.Sprintf("HTTP %d", re.StatusCode)
	if re.StatusCode < http.StatusBadRequest {
		status = "the long-running operation failed" // a poll answered 200 with status Failed
	}
	msg := fmt.Sprintf("%s (%s)", cmp.Or(body.Error.Code, re.ErrorCode, http.StatusText(re.StatusCode)), status)
	if body.Error.Message != "" {
		msg = fmt.Sprintf("%s: %s (%s)", cmp.Or(body.Error.Code, re.ErrorCode), body.Error.Message, status)
	}
	// What came before the SDK's error (the attempts a retry gave up after)
	// is kept, the dump is not.
	if full, dump := err.Error(), re.Error(); strings.HasSuffix(full, dump) && len(full) > len(dump) {
		msg = strings.TrimSuffix(full, dump) + msg
	}
	return &armError{ResponseError: re, message: msg}
}

// IsPriorityConflict tells whether ARM refused a security rule because
// another rule of the NSG holds its priority and direction.
func IsPriorityConflict(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == "SecurityRuleConflict"
}

// list reads every page of a listing, in order, and hands each page to
// add. A page that fails for a reason worth another attempt starts the
// listing over: an ARM pager cannot retry its first page.
func list[T any](ctx context.Context, newPager func() *runtime.Pager[T], add func(T)) error {
	var pages []T
	err := withRetry(ctx, func(ctx context.Context) error {
		pages = pages[:0]
		for pager := newPager(); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			pages = append(pages, page)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, page := range pages {
		add(page)
	}
	return nil
}

// readParallelism bounds how many NSGs one operation reads at once:
// enough that a policy's are read side by side in one round trip, few
// enough that a policy of hundreds opens tens of connections, not
// hundreds. (ARM's throttling counts requests, not how many are in
// flight: the reads a policy needs cost the same either way.)
const readParallelism = 32

// parallel runs fn for each item, at most readParallelism at once, and
// joins the errors.
func parallel[T any](items []T, fn func(T) error) error {
	errs := make([]error, len(items))
	sem := make(chan struct{}, readParallelism)
	var wg sync.WaitGroup
	for i, item := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(item)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
