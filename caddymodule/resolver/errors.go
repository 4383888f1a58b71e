package resolver

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// ErrTimeout matches, with errors.Is, every error returned because no
// resolver answered in time: a *TimeoutError, including the one returned
// when the context's deadline expired first.
var ErrTimeout = errors.New("dns timeout")

// ErrNoServers is returned by Exchange when the Client has no servers.
var ErrNoServers = errors.New("dns: no resolvers configured")

// TimeoutError reports that every try of a query timed out, at every
// resolver that was still worth asking.
type TimeoutError struct {
	Servers []string // the resolvers that timed out, in the order tried
	Tries   int      // number of exchanges that timed out, over all of Servers

	// Ignored counts the UDP datagrams received and discarded because they
	// did not answer the question (wrong ID, wrong question, not a response,
	// undecodable); IgnoredWhy is the reason for the last one. A high count
	// points at a broken resolver or at spoofing attempts.
	Ignored    int
	IgnoredWhy string

	// Cause is the context error when the context's deadline expired before
	// the tries were exhausted; nil otherwise.
	Cause error
}

func (e *TimeoutError) Error() string {
	var b strings.Builder
	b.WriteString("dns timeout: ")
	b.WriteString(strings.Join(e.Servers, ", "))
	b.WriteString(" (")
	b.WriteString(plural(e.Tries, "try", "tries"))
	if e.Ignored > 0 {
		b.WriteString("; ignored ")
		b.WriteString(plural(e.Ignored, "response", "responses"))
		if e.IgnoredWhy != "" {
			b.WriteString(", last: ")
			b.WriteString(e.IgnoredWhy)
		}
	}
	if e.Cause != nil {
		b.WriteString("; ")
		b.WriteString(e.Cause.Error())
	}
	b.WriteString(")")
	return b.String()
}

// Is reports whether target is ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Timeout reports true, like net.Error.
func (e *TimeoutError) Timeout() bool { return true }

// Unwrap returns Cause (context.DeadlineExceeded), if any.
func (e *TimeoutError) Unwrap() error { return e.Cause }

// ServerError is the failure of one resolver for a reason other than
// time: a network error, a malformed TCP answer, or an answer whose RCODE
// says the resolver could not or would not answer (SERVFAIL, REFUSED,
// FORMERR, NOTIMP).
type ServerError struct {
	Server string   // "host:port"
	Net    string   // "udp" or "tcp"
	Rcode  int      // the RCODE for an error answer; -1 when there was no answer
	Msg    *dns.Msg // the error answer, when Rcode >= 0
	Err    error    // the network or protocol error, when Rcode < 0
}

func (e *ServerError) Error() string {
	s := "dns: " + e.Server + " over " + e.Net + ": "
	if e.Rcode >= 0 {
		return s + rcodeString(e.Rcode)
	}
	return s + e.Err.Error()
}

// Unwrap returns the underlying network or protocol error.
func (e *ServerError) Unwrap() error { return e.Err }

// AllFailedError reports that every resolver failed, and that at least one
// of them failed for a reason other than time (otherwise the error is a
// *TimeoutError). It does not match ErrTimeout: a resolver did answer.
type AllFailedError struct {
	// Errors holds each resolver's last error, in the order tried: a
	// *ServerError, or a *TimeoutError for a resolver that only timed out.
	Errors []error
}

func (e *AllFailedError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, err := range e.Errors {
		msgs[i] = err.Error()
	}
	return "dns: all resolvers failed: " + strings.Join(msgs, "; ")
}

// Unwrap returns the errors of the resolvers that did not time out, so that
// errors.As finds a *ServerError while errors.Is(err, ErrTimeout) stays
// false.
func (e *AllFailedError) Unwrap() []error {
	var out []error
	for _, err := range e.Errors {
		if !errors.Is(err, ErrTimeout) {
			out = append(out, err)
		}
	}
	return out
}

// CanceledError reports that the context was canceled before any resolver
// gave an acceptable answer. It wraps context.Canceled (or the context's
// cause).
type CanceledError struct {
	Tries int   // exchanges started before the cancellation
	Err   error // context.Cause(ctx)
}

func (e *CanceledError) Error() string {
	return "dns: query canceled after " + plural(e.Tries, "try", "tries") + ": " + e.Err.Error()
}

// Unwrap returns the context's error.
func (e *CanceledError) Unwrap() error { return e.Err }

// contextError turns a done context into our error: a deadline is a
// timeout, anything else a cancellation.
// A nil ctx.Err() means the deadline has passed by the clock but the
// context's timer has not fired yet.
func contextError(ctx context.Context, servers []string, tries int) error {
	err := ctx.Err()
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		return &TimeoutError{Servers: servers, Tries: tries, Cause: context.DeadlineExceeded}
	}
	return &CanceledError{Tries: tries, Err: context.Cause(ctx)}
}

func rcodeString(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rcode)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
