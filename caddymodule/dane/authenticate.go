package dane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// Handshake reaches the server of p.Identity and obtains the certificate
// chain it presents, leaf first, passing it to p.Verify before anything
// is trusted: for a TLS client, in crypto/tls's VerifyConnection, failing
// the handshake when p.Verify fails. It returns nil only when p.Verify
// accepted the chain of the connection it hands back. It may call
// p.Verify more than once (a resumed session refused, then a full
// handshake on a new connection): the last call decides.
//
// When the server cannot be reached at all (the TCP dial fails), it
// returns a *ConnectError: that is not a DANE verdict.
type Handshake func(ctx context.Context, p Peer) error

// Peer is what a Handshake is told about the server it must reach.
type Peer struct {
	Identity Identity
	// Expires is when the verification stops holding (the TLSA result's
	// lifetime): a connection must not carry new requests after it.
	Expires time.Time
	// Verify matches the presented chain, leaf first, against the proven
	// TLSA records (or PKIX, under NoTLSAPKIX).
	Verify func(chain []*x509.Certificate) error
}

// ConnectError is a failure to reach the server before any handshake: a
// Handshake returns it, and Authenticate passes it on unchanged, so that a
// caller can tell an unreachable upstream from a refused one.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// Verdict is a successful authentication.
type Verdict struct {
	Identity Identity
	Set      *TLSASet    // the proven TLSA RRset (or the PKIX stand-in)
	Match    *tlsa.Match // which record matched, at which depth
}

// Authenticate is the one way to authenticate a server by DANE. It decides
// the TLSA base domain and reference identifiers of t (Target.Identity),
// looks up and proves the TLSA RRset (bounded by LookupTimeout), runs hs
// and matches the chain it presents. The result is a Verdict, or a
// *Refusal naming the check that failed, or a *ConnectError from hs.
//
// A handshake that ends without its chain having been verified is refused:
// nothing but Verify's acceptance produces a Verdict.
func (a *Authenticator) Authenticate(ctx context.Context, t Target, hs Handshake) (*Verdict, error) {
	id, err := t.Identity()
	if err != nil {
		return nil, err
	}
	set, err := a.lookupFor(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &Verdict{Identity: id, Set: set}
	var refusal error
	verify := func(chain []*x509.Certificate) error {
		m, err := a.verifyFor(set, chain, id.Names, id.purpose())
		if err != nil {
			refusal, v.Match = err, nil
			return err
		}
		refusal, v.Match = nil, m
		return nil
	}
	err = hs(ctx, Peer{Identity: id, Expires: set.Expires, Verify: verify})
	var ce *ConnectError
	switch {
	case refusal != nil:
		return nil, refusal
	case errors.As(err, &ce):
		return nil, err
	case err != nil:
		return nil, set.refuse(ReasonHandshake, err)
	case v.Match == nil:
		return nil, set.refuse(ReasonHandshake, errors.New("the handshake ended without the presented chain being verified"))
	}
	return v, nil
}

// lookupFor returns the TLSA set that id is verified against, reporting
// the lookup to Observe.
func (a *Authenticator) lookupFor(ctx context.Context, id Identity) (*TLSASet, error) {
	start := time.Now()
	var set *TLSASet
	var err error
	if a.LookupTimeout > 0 && id.NoDANE == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.LookupTimeout)
		defer cancel()
	}
	switch {
	case id.NoDANE != nil:
		set, err = a.noDANE(id)
	case id.Owner != "":
		set, err = a.lookupClient(ctx, id)
	default:
		set, err = a.lookup(ctx, id.Base, id.Port)
	}
	if a.Observe != nil {
		a.Observe(set, err, time.Since(start))
	}
	return set, err
}

// noDANE is the set of a target that DNSSEC proved has no DANE before any
// TLSA lookup (an Insecure SRV or address RRset, RFC 7673 §3.1, §3.2):
// PKIX under NoTLSAPKIX, a refusal otherwise.
func (a *Authenticator) noDANE(id Identity) (*TLSASet, error) {
	res := id.NoDANE
	if a.OnNoTLSA == NoTLSAPKIX && provablyNoDANE(res) {
		return pkixSet(id.Base, res.Name, res, a.now()), nil
	}
	why := fmt.Errorf("the SRV RRset %s is %s, so its targets have no DANE (RFC 7673 §3.1)", res.Name, res.Status)
	if res.Type != dns.TypeSRV {
		why = fmt.Errorf("the address records of SRV target %s are %s, so it has no DANE (RFC 7673 §3.2)", id.Base, res.Status)
	}
	if res.Err != nil {
		why = fmt.Errorf("%w: %w", why, res.Err)
	}
	return nil, &Refusal{Reason: reasonForLookup(res), Owner: res.Name, Status: res.Status, EDE: res.EDE, Result: res, Err: why}
}
