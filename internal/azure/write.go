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
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/jitaccess/terraform-provider-jit/internal/retry"
)

// pollFrequency is how often a long-running operation is polled when ARM
// sends no Retry-After.
const pollFrequency = time.Second

// await polls a long-running operation until it ends and returns its
// result. A poll that fails for a reason worth another attempt (a
// throttled GET, a dropped connection) is repeated on its own, never the
// write that started the operation; an operation that ended Failed is the
// error, for the write's own retry to judge.
func await[T any](ctx context.Context, poller *runtime.Poller[T]) (T, error) {
	for !poller.Done() {
		var resp *http.Response
		if err := withRetry(ctx, func(ctx context.Context) (err error) {
			resp, err = poller.Poll(ctx)
			return err
		}); err != nil {
			var zero T
			return zero, err
		}
		if poller.Done() {
			break
		}
		wait := pollFrequency
		if after := retryAfter(resp); after > 0 {
			wait = after
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			var zero T
			return zero, ctx.Err()
		case <-timer.C:
		}
	}
	// The result of a finished operation may need one more GET, which is
	// retried on its own when it fails as a call (throttled, dropped). An
	// operation that ended Failed comes back in a 200 poll response: that
	// is returned at once, for the write's own retry to judge.
	var out T
	err := retry.Do(ctx, retry.DefaultBackoff, func(err error) (bool, time.Duration) {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode < http.StatusTooManyRequests {
			return false, 0
		}
		return classify(err)
	}, func(ctx context.Context) (err error) {
		out, err = poller.Result(ctx)
		return err
	})
	return out, err
}

// retryableCodes are ARM error codes that mean "try again later": an NSG or
// firewall accepts one write at a time, and ARM throttles writes.
var retryableCodes = map[string]bool{
	"AnotherOperationInProgress":          true,
	"RetryableErrorDueToAnotherOperation": true,
	"RetryableError":                      true,
	"TooManyRequests":                     true,
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
