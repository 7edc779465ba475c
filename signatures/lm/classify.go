package lm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tmc/langchaingo/llms"
)

// ProviderError is a classified failure of one provider call. errors.Is
// matches its Kind (ErrRateLimited, ErrUnavailable, ...) and the underlying
// error alike.
type ProviderError struct {
	// Model is the "provider:model" name that failed.
	Model string
	// Kind is one of this package's sentinels.
	Kind error
	// Status is the HTTP status of the failed response, 0 when unknown.
	Status int
	// RetryAfter is the wait the provider asked for (Retry-After), 0 when
	// it asked for none.
	RetryAfter time.Duration
	// Err is the provider's own error.
	Err error
}

// Error describes the failure: model, kind, status, requested wait, cause.
func (e *ProviderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Model, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the kind and the cause, so errors.Is sees both.
func (e *ProviderError) Unwrap() []error { return []error{e.Kind, e.Err} }

// Retryable reports whether err is worth retrying: rate limits, provider-side
// failures and timeouts. A cancelled caller context is never retryable.
func Retryable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	return errors.Is(err, ErrRateLimited) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)
}

// RetryAfter returns the wait a provider asked for with err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var pe *ProviderError
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		return pe.RetryAfter, true
	}
	return 0, false
}

// Kind names err's class for metrics and logs: "rate_limited",
// "unavailable", "timeout", "context_window", "bad_request", "auth", "content_filtered",
// "budget", "circuit_open", "canceled" or "other".
func Kind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{ErrRateLimited, "rate_limited"},
		{ErrUnavailable, "unavailable"},
		{ErrTimeout, "timeout"},
		{ErrContextWindow, "context_window"},
		{ErrBadRequest, "bad_request"},
		{ErrAuth, "auth"},
		{ErrContentFiltered, "content_filtered"},
		{ErrBudgetExceeded, "budget"},
		{ErrCircuitOpen, "circuit_open"},
		{context.Canceled, "canceled"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}

// kindOfStatus classifies an HTTP status code; ok is false for a success.
func kindOfStatus(status int) (error, bool) {
	switch {
	case status < 400:
		return nil, false
	case status == http.StatusTooManyRequests:
		return ErrRateLimited, true
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrAuth, true
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return ErrTimeout, true
	case status >= 500:
		return ErrUnavailable, true
	default:
		return ErrBadRequest, true
	}
}

// contextWindowPhrases are what providers say when a prompt is too long:
// OpenAI's context_length_exceeded ("maximum context length is ..."),
// Anthropic's "prompt is too long", vLLM's and llama.cpp's wordings.
var contextWindowPhrases = []string{
	"context_length_exceeded", "maximum context length", "context length", "context window",
	"prompt is too long", "input is too long", "too many tokens", "exceeds the context",
}

// isContextWindow reports whether a provider's error says the prompt is too
// long for the model.
func isContextWindow(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, p := range contextWindowPhrases {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// kindOfError classifies an error that came without an HTTP status: context
// and network errors first, then langchaingo's message-based mapper (a 429
// from its openai client is a plain string).
func kindOfError(provider string, err error) error {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ErrTimeout
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.As(err, &netErr):
		return ErrUnavailable
	}
	// langchaingo's openai client flattens a client timeout into a string
	// ("request timeout: API call exceeded deadline").
	if msg := strings.ToLower(err.Error()); strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline") {
		return ErrTimeout
	}
	if isContextWindow(err) {
		return ErrContextWindow
	}
	var le *llms.Error
	if !errors.As(llms.NewErrorMapper(provider).WrapError(err), &le) {
		return ErrProvider
	}
	switch le.Code {
	case llms.ErrCodeRateLimit:
		return ErrRateLimited
	case llms.ErrCodeAuthentication:
		return ErrAuth
	case llms.ErrCodeTokenLimit:
		return ErrContextWindow
	case llms.ErrCodeInvalidRequest, llms.ErrCodeResourceNotFound:
		return ErrBadRequest
	case llms.ErrCodeTimeout:
		return ErrTimeout
	case llms.ErrCodeProviderUnavailable:
		return ErrUnavailable
	case llms.ErrCodeContentFilter:
		return ErrContentFiltered
	case llms.ErrCodeCanceled:
		return context.Canceled
	}
	return ErrProvider
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}
