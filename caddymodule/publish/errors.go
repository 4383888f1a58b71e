package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/caddy-dane/caddy-dane/caddymodule/rfc2136"
)

// Kinds of failure, each a metric label (Reason).
var (
	ErrLock         = errors.New("storage lock")
	ErrStorage      = errors.New("storage")
	ErrZoneNotFound = errors.New("zone not found")
	ErrNotVisible   = errors.New("records not visible")
	ErrProvider     = errors.New("DNS provider")
)

// Error is a failure to publish at one owner.
type Error struct {
	Kind    error  // one of the Err* above, or an rfc2136 kind
	Owner   string // the TLSA owner, when there is one
	Op      string // what was being done
	Err     error
	Partial *Change // when set, the part of the change that was made
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Owner != "" {
		b.WriteString(e.Owner + ": ")
	}
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString(e.Kind.Error())
	}
	if e.Partial != nil && len(e.Partial.Added) > 0 {
		fmt.Fprintf(&b, " (added %s before the failure)", strings.Join(e.Partial.Added, ", "))
	}
	return b.String()
}

func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// kindLabel is a kind of failure and its metric label.
type kindLabel struct {
	kind  error
	label string
}

// providerKinds are the failures a provider reports that have a label of
// their own, in the order they are tested (the first that err wraps wins).
var providerKinds = []kindLabel{
	{rfc2136.ErrTSIGRefused, "tsig_refused"},
	{rfc2136.ErrZoneNotServed, "zone_not_served"},
	{rfc2136.ErrRefused, "refused"},
	{rfc2136.ErrPrerequisite, "prerequisite"},
	{rfc2136.ErrOutsideZone, "outside_zone"},
	{rfc2136.ErrResponseTSIG, "response_tsig"},
	{rfc2136.ErrBadResponse, "bad_response"},
	{rfc2136.ErrServer, "server"},
	{rfc2136.ErrTimeout, "timeout"},
	{rfc2136.ErrNetwork, "network"},
	{rfc2136.ErrRecord, "record"},
	{rfc2136.ErrConfig, "config"},
}

// ownKinds are this package's, after the provider's.
var ownKinds = []kindLabel{
	{ErrLock, "lock"},
	{ErrStorage, "storage"},
	{ErrZoneNotFound, "zone_not_found"},
	{ErrNotVisible, "not_visible"},
	{context.Canceled, "canceled"},
	{context.DeadlineExceeded, "timeout"},
}

// classify names the kind of a provider error.
func classify(err error) error {
	for _, k := range providerKinds {
		if errors.Is(err, k.kind) {
			return k.kind
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return rfc2136.ErrTimeout
	}
	return ErrProvider
}

// Reason returns the metric label of err: tsig_refused, zone_not_served,
// refused, prerequisite, outside_zone, response_tsig, bad_response,
// server, timeout, network, record, config, lock, storage,
// zone_not_found, not_visible, canceled or other.
func Reason(err error) string {
	for _, kinds := range [][]kindLabel{providerKinds, ownKinds} {
		for _, k := range kinds {
			if errors.Is(err, k.kind) {
				return k.label
			}
		}
	}
	return "other"
}
