package dnssec

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/miekg/dns"
)

// Exchanger sends one DNS query and returns the response. It must honour
// ctx; the validator also stops waiting when ctx is done.
type Exchanger interface {
	Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error)
}

// ExchangeFunc adapts a function to the Exchanger interface.
type ExchangeFunc func(ctx context.Context, q *dns.Msg) (*dns.Msg, error)

// Exchange calls f.
func (f ExchangeFunc) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) { return f(ctx, q) }

// ednsUDPSize is the EDNS0 payload size advertised (DNS Flag Day 2020).
const ednsUDPSize = 1232

// errNetwork marks an exchange that failed for a reason other than the
// context.
var errNetwork = errors.New("dns exchange failed")

// newQuery builds the query sent for name/qtype: RD=1 (ask a recursive
// resolver), CD=1 (RFC 4035 §3.2.2: return data even if the resolver
// considers it bogus, so we see the signatures and decide ourselves), and
// EDNS0 with DO=1 (RFC 3225) so RRSIG, NSEC and NSEC3 are included.
func newQuery(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	q.CheckingDisabled = true
	q.SetEdns0(ednsUDPSize, true)
	return q
}

// exchange sends one query within the lookup's query budget and returns a
// response that answers exactly that question, or why there is none.
func (v *Validator) exchange(ctx context.Context, w *work, name string, qtype uint16) (*dns.Msg, *IndeterminateError) {
	set := rrsetName(name, qtype)
	if n := w.queries.Add(1); int(n) > v.limits.MaxQueries {
		return nil, indeterminatef(set, ErrLimitExceeded, "more than %d queries for one lookup", v.limits.MaxQueries)
	}
	if err := ctx.Err(); err != nil {
		return nil, ctxIndeterminate(set, err)
	}
	q := newQuery(name, qtype)
	type reply struct {
		m   *dns.Msg
		err error
	}
	ch := make(chan reply, 1)
	go func() {
		m, err := v.exchanger.Exchange(ctx, q)
		ch <- reply{m, err}
	}()
	var r reply
	select {
	case r = <-ch:
	case <-ctx.Done():
		return nil, ctxIndeterminate(set, ctx.Err())
	}
	if r.err != nil {
		var ne net.Error
		switch {
		case errors.Is(r.err, context.DeadlineExceeded), errors.As(r.err, &ne) && ne.Timeout():
			return nil, indeterminatef(set, context.DeadlineExceeded, "dns timeout")
		case errors.Is(r.err, context.Canceled):
			return nil, ctxIndeterminate(set, r.err)
		}
		return nil, indeterminatef(set, fmt.Errorf("%w: %w", errNetwork, r.err), "dns exchange for %s: %v", set, r.err)
	}
	if why := mismatch(q, r.m); why != "" {
		return nil, indeterminatef(set, errNetwork, "response for %s ignored: %s", set, why)
	}
	return r.m, nil
}

func ctxIndeterminate(set string, err error) *IndeterminateError {
	if errors.Is(err, context.DeadlineExceeded) {
		return indeterminatef(set, err, "dns timeout")
	}
	return indeterminatef(set, err, "lookup canceled")
}

// mismatch returns why r is not a response to q ("" when it is): the QR
// bit, opcode, ID and the question (name case-insensitively, type, class)
// must match (RFC 5452 §9.1), and a truncated answer is incomplete.
func mismatch(q, r *dns.Msg) string {
	switch {
	case r == nil:
		return "no message"
	case !r.Response:
		return "QR bit not set"
	case r.Opcode != dns.OpcodeQuery:
		return fmt.Sprintf("opcode %s", dns.OpcodeToString[r.Opcode])
	case r.Id != q.Id:
		return fmt.Sprintf("ID %d, sent %d", r.Id, q.Id)
	case len(r.Question) != 1:
		return fmt.Sprintf("%d questions", len(r.Question))
	case r.Truncated:
		return "truncated (TC bit set)"
	}
	rq, qq := r.Question[0], q.Question[0]
	if !equalNames(rq.Name, qq.Name) || rq.Qtype != qq.Qtype || rq.Qclass != qq.Qclass {
		return fmt.Sprintf("question %s %s %s", rq.Name, dns.ClassToString[rq.Qclass], dns.TypeToString[rq.Qtype])
	}
	return ""
}

// equalNames compares domain names case-insensitively (RFC 4343).
func equalNames(a, b string) bool { return dns.CanonicalName(a) == dns.CanonicalName(b) }

// isAncestorOrSelf reports whether name is at or below zone.
func isAncestorOrSelf(zone, name string) bool { return dns.IsSubDomain(zone, name) }
