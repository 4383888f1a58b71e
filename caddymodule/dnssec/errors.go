package dnssec

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// ErrLimitExceeded is wrapped by an IndeterminateError when a lookup hit one
// of the work caps in Limits.
var ErrLimitExceeded = errors.New("dnssec: work limit exceeded")

// BogusError says which check failed on which RRset when the chain of trust
// requires a signature and none validates (RFC 4035 §5.5).
type BogusError struct {
	RRset  string // "owner TYPE" the check failed on
	Reason string // the check that failed, naming the RRset
	EDE    uint16 // RFC 8914 code
}

func (e *BogusError) Error() string { return "bogus: " + e.Reason }

// InsecureError says why an RRset is provably not protected by DNSSEC.
type InsecureError struct {
	RRset  string
	Zone   string // zone the chain of trust proved insecure
	Reason string
	EDE    uint16 // 1 or 2 when an unsupported algorithm or digest made it so
}

func (e *InsecureError) Error() string { return "insecure: " + e.Reason }

// IndeterminateError says why no proof was reached.
type IndeterminateError struct {
	RRset  string
	Reason string
	Err    error // underlying cause (context errors, ErrLimitExceeded), or nil
	EDE    uint16
}

func (e *IndeterminateError) Error() string { return "indeterminate: " + e.Reason }
func (e *IndeterminateError) Unwrap() error { return e.Err }

func bogusf(rrset string, ede uint16, format string, args ...any) *BogusError {
	return &BogusError{RRset: rrset, Reason: fmt.Sprintf(format, args...), EDE: ede}
}

func indeterminatef(rrset string, cause error, format string, args ...any) *IndeterminateError {
	ede := dns.ExtendedErrorCodeDNSSECIndeterminate
	switch {
	case errors.Is(cause, context.DeadlineExceeded), errors.Is(cause, errNetwork):
		ede = dns.ExtendedErrorCodeNoReachableAuthority
	}
	return &IndeterminateError{RRset: rrset, Reason: fmt.Sprintf(format, args...), Err: cause, EDE: ede}
}

// edeOf returns the Extended DNS Error code carried by err.
func edeOf(err error) uint16 {
	var b *BogusError
	var i *InsecureError
	var d *IndeterminateError
	switch {
	case errors.As(err, &b):
		return b.EDE
	case errors.As(err, &i):
		return i.EDE
	case errors.As(err, &d):
		return d.EDE
	}
	return 0
}

// Reason returns the reason carried by an error of this package without its
// class prefix ("RRSIG over ... expired" for a *BogusError), or err.Error()
// for any other error, "" for nil.
func Reason(err error) string {
	var b *BogusError
	var i *InsecureError
	var d *IndeterminateError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &b):
		return b.Reason
	case errors.As(err, &i):
		return i.Reason
	case errors.As(err, &d):
		return d.Reason
	}
	return err.Error()
}

// statusOf maps an error from this package to its Status.
func statusOf(err error) Status {
	var b *BogusError
	var i *InsecureError
	switch {
	case err == nil:
		return Secure
	case errors.As(err, &b):
		return Bogus
	case errors.As(err, &i):
		return Insecure
	}
	return Indeterminate
}
