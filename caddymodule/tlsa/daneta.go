package tlsa

import (
	"bytes"
	"crypto/x509"
	"fmt"
)

// daneTA looks for a DANE-TA(2) trust anchor (RFC 7671 §5.2) and verifies
// the path from it down to the leaf. It returns (nil, nil) when no
// DANE-TA record matched anything, and a *ChainError when one matched but
// the path does not verify.
//
// The path is built the way OpenSSL builds it: upward from the leaf, one
// issuer at a time, taken from the presented certificates (in any order,
// RFC 8446 §4.4.2 allows that). At each step:
//
//  1. a certificate published in full by a "2 0 0" record that issued the
//     current certificate becomes the anchor, one level up. It need not be
//     presented (RFC 7671 §5.2.2), and it wins over a presented issuer with
//     the same name and key: a cross-signed copy of a self-signed root
//     (OpenSSL's dane-cross test) must not hide the anchor the zone named.
//  2. otherwise the presented issuer is added, and becomes the anchor if a
//     DANE-TA record matches it. The lowest matching depth wins.
//
// When no issuer is left, a bare public key from a "2 1 0" record that
// signed the top certificate is the anchor; the match depth is that of the
// top certificate, since the key itself is no certificate (OpenSSL:
// check_dane_pkeys).
func (v *verifier) daneTA() (*Match, error) {
	used := make([]bool, len(v.chain))
	used[0] = true
	path := make([]*x509.Certificate, 1, len(v.chain)+1)
	path[0] = v.leaf
	var broken *ChainError // first signature failure on the path, if any

	for {
		cur := path[len(path)-1]
		depth := len(path) - 1

		for i := range v.recs {
			p := &v.recs[i]
			if p.Usage == DANETA && p.cert != nil && issuedBy(cur, p.cert) == nil {
				return v.finishTA(p.Record, append(path, p.cert), depth+1, broken)
			}
		}

		idx, sigErr := presentedIssuer(v.chain, used, cur)
		if idx < 0 {
			break
		}
		used[idx] = true
		next := v.chain[idx]
		path = append(path, next)
		if sigErr != nil && broken == nil {
			broken = &ChainError{
				Reason: fmt.Sprintf("the certificate at depth %d (%s) is not validly signed by its issuer at depth %d",
					depth, subjectOf(cur), depth+1),
				Err: sigErr,
			}
		}
		for i := range v.recs {
			p := &v.recs[i]
			if p.Usage == DANETA && p.matches(next) {
				return v.finishTA(p.Record, path, depth+1, broken)
			}
		}
	}

	top := path[len(path)-1]
	for i := range v.recs {
		p := &v.recs[i]
		if p.Usage == DANETA && p.key != nil && signedByKey(top, p.key) == nil {
			return v.finishTA(p.Record, path, len(path)-1, broken)
		}
	}

	// A DANE-TA record that matches a presented certificate off the leaf's
	// issuer path still names an anchor the peer meant to use; say so
	// rather than "no match".
	for i, c := range v.chain[1:] {
		if used[i+1] {
			continue
		}
		for j := range v.recs {
			p := &v.recs[j]
			if p.Usage == DANETA && p.matches(c) {
				return nil, &ChainError{Record: p.Record, Depth: i + 1,
					Reason: fmt.Sprintf("the matched certificate (%s, presented at position %d) is not an issuer on the leaf's certification path",
						subjectOf(c), i+1)}
			}
		}
	}
	// Nothing matched: a bad signature on the way up is then no more than
	// one reason among others the chain is not trusted; report the mismatch.
	return nil, nil
}

// finishTA completes a DANE-TA match: a bad signature below the anchor
// fails it, and so does a certificate on the path outside its validity
// period. OpenSSL checks the dates of every certificate on the path, the
// anchor included (x509_vfy.c internal_verify: "in addition to RFC 5280,
// do also for trust anchor cert"); RFC 7671 §5.2 leaves that to PKIX
// practice. The path must then pass checkPathConstraints: the TLS server
// purpose (extended key usage), path length and name constraints, as
// OpenSSL checks them.
func (v *verifier) finishTA(r Record, path []*x509.Certificate, depth int, broken *ChainError) (*Match, error) {
	if broken != nil {
		broken.Record, broken.Depth = r, depth
		return nil, broken
	}
	for i, c := range path {
		switch {
		case v.now.Before(c.NotBefore):
			return nil, &ChainError{Record: r, Depth: depth,
				Reason: fmt.Sprintf("the certificate at depth %d (%s) is not valid before %s",
					i, subjectOf(c), c.NotBefore.UTC().Format("2006-01-02T15:04:05Z"))}
		case v.now.After(c.NotAfter):
			return nil, &ChainError{Record: r, Depth: depth,
				Reason: fmt.Sprintf("the certificate at depth %d (%s) expired at %s",
					i, subjectOf(c), c.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))}
		}
	}
	if reason := checkPathConstraints(path, v.o.Purpose); reason != "" {
		return nil, &ChainError{Record: r, Depth: depth, Reason: reason}
	}
	return &Match{Record: r, Depth: depth, Chain: path}, nil
}

// presentedIssuer finds, among the presented certificates not yet on the
// path, an issuer of cur: same name (RFC 5280 §6.1, compared as DER) and,
// preferably, a valid signature. It returns -1 when there is none, and the
// signature error when only a badly signing candidate exists.
func presentedIssuer(chain []*x509.Certificate, used []bool, cur *x509.Certificate) (int, error) {
	cand, candErr := -1, error(nil)
	for i, c := range chain {
		if used[i] || !bytes.Equal(cur.RawIssuer, c.RawSubject) {
			continue
		}
		err := cur.CheckSignatureFrom(c)
		if err == nil {
			return i, nil
		}
		if cand < 0 {
			cand, candErr = i, err
		}
	}
	return cand, candErr
}

// issuedBy checks that parent issued child: names chain and the signature
// verifies (crypto/x509 also requires parent to be a CA).
func issuedBy(child, parent *x509.Certificate) error {
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return fmt.Errorf("issuer name does not match")
	}
	return child.CheckSignatureFrom(parent)
}

// signedByKey checks child's signature with a bare public key.
func signedByKey(child *x509.Certificate, key any) error {
	k := &x509.Certificate{PublicKey: key}
	return k.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
}

func subjectOf(c *x509.Certificate) string {
	s := c.Subject.String()
	if s == "" {
		return "empty subject"
	}
	return clip(s)
}
