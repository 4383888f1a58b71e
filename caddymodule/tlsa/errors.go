package tlsa

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrEmptyChain is returned when the peer presented no certificate (or a
// nil leaf): there is nothing to match.
var ErrEmptyChain = errors.New("tlsa: peer presented no certificate")

// UnusableError says why one record cannot take part in matching (RFC 7671
// §4.1). [Record.Usable] returns it; [NoUsableError] collects them.
type UnusableError struct {
	Record Record
	Reason string // e.g. "unknown certificate usage 4", "SHA2-256 digest is 31 bytes, want 32"
}

func (e *UnusableError) Error() string {
	return "TLSA " + e.Record.short() + " unusable: " + e.Reason
}

// NoUsableError is returned when no record is usable. RFC 6698 §4.1 then
// treats the peer as if it had no TLSA records; this package refuses
// instead, because its caller asked for DANE and got nothing to check.
type NoUsableError struct {
	Unusable []*UnusableError // one per record, in the order given; empty when no record was given
}

func (e *NoUsableError) Error() string {
	if len(e.Unusable) == 0 {
		return "no usable TLSA: no records"
	}
	var b strings.Builder
	b.WriteString("no usable TLSA: ")
	for i, u := range e.Unusable {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(u.Record.short())
		b.WriteString(": ")
		b.WriteString(u.Reason)
	}
	return b.String()
}

// MismatchError is returned when usable records exist but none matches the
// presented chain (OpenSSL: X509_V_ERR_DANE_NO_MATCH).
type MismatchError struct {
	Tried []Record            // the usable records that were compared, after digest agility (RFC 7671 §9)
	Chain []*x509.Certificate // the chain as presented, leaf first
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	b.WriteString("TLSA mismatch: ")
	for i, r := range e.Tried {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.short())
	}
	b.WriteString(" against presented chain ")
	b.WriteString(describeChain(e.Chain))
	return b.String()
}

// describeChain summarises a chain in one line: for each certificate its
// depth, subject and the start of the SHA2-256 of its SPKI, which is what a
// "3 1 1" or "2 1 1" record would have to hold.
func describeChain(chain []*x509.Certificate) string {
	const maxShown = 5 // a longer chain is hostile or broken; the count says so
	var b strings.Builder
	for i, c := range chain {
		if i == maxShown {
			fmt.Fprintf(&b, " … (%d certificates)", len(chain))
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%d] ", i)
		if c == nil {
			b.WriteString("(nil)")
			continue
		}
		subj := c.Subject.String()
		if subj == "" {
			subj = "(empty subject)"
		}
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		fmt.Fprintf(&b, "%s spki-sha256 %s…", clip(subj), hex.EncodeToString(sum[:6]))
	}
	if len(chain) == 0 {
		b.WriteString("(empty)")
	}
	return b.String()
}

// NameError is returned when a record matched but the leaf certificate
// matches none of the reference identifiers (RFC 7671 §5.2.2 for DANE-TA,
// RFC 6125 via PKIX for PKIX-TA/PKIX-EE, and for DANE-EE only when
// [Options.CheckEENames] asks for it). OpenSSL: X509_V_ERR_HOSTNAME_MISMATCH.
type NameError struct {
	Match *Match   // the match that authenticated the chain; its Depth says which certificate
	Names []string // the reference identifiers that were tried
	Leaf  []string // the leaf's DNS names (SANs), for the message
}

func (e *NameError) Error() string {
	var by string
	if e.Match != nil {
		by = fmt.Sprintf("TLSA %s (%s) matched at depth %d, but ", e.Match.Record.short(), e.Match.Record.Usage, e.Match.Depth)
	}
	names := "no DNS names"
	if len(e.Leaf) > 0 {
		names = "DNS names " + clip(strings.Join(e.Leaf, ", "))
	}
	if len(e.Names) == 0 {
		return by + "no reference name was given to check the leaf certificate (" + names + ") against"
	}
	return by + "the leaf certificate (" + names + ") matches none of " + clip(strings.Join(e.Names, ", "))
}

// ChainError is returned when a DANE-TA(2) record matched a trust anchor but
// the chain from that anchor down to the leaf does not verify: a signature
// fails, a certificate is out of its validity period, a certificate's
// extended key usage does not allow a TLS server, a CA's path length or
// name constraints are violated, or the matched certificate is not on the
// leaf's issuer path (RFC 7671 §5.2).
type ChainError struct {
	Record Record // the DANE-TA record that matched
	Depth  int    // depth of the matched anchor
	Reason string // what failed, with the depth of the certificate
	Err    error  // the underlying x509 error, if any
}

func (e *ChainError) Error() string {
	s := fmt.Sprintf("DANE-TA chain: TLSA %s matched at depth %d, but %s", e.Record.short(), e.Depth, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ChainError) Unwrap() error { return e.Err }

// PKIXError is returned when PKIX-TA(0) or PKIX-EE(1) records are in play
// and ordinary PKIX validation (RFC 5280 via crypto/x509) of the chain
// fails: RFC 6698 §2.1.1 requires both the TLSA match and PKIX validation
// for these usages. OpenSSL reports X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
// and similar.
type PKIXError struct {
	Err   error  // the crypto/x509 error
	Match *Match // the TLSA match already found on presented certificates, or nil
}

func (e *PKIXError) Error() string {
	s := "PKIX validation failed"
	if e.Match != nil {
		s += fmt.Sprintf(" (TLSA %s matched at depth %d)", e.Match.Record.short(), e.Match.Depth)
	}
	if e.Err == nil {
		return s
	}
	return s + ": " + e.Err.Error()
}

func (e *PKIXError) Unwrap() error { return e.Err }
