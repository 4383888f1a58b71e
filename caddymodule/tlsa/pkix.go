package tlsa

import "crypto/x509"

// pkix handles PKIX-EE(1) and PKIX-TA(0) records (RFC 6698 §2.1.1): the
// chain must pass ordinary PKIX validation to Roots AND a record must match,
// the leaf for PKIX-EE, a CA certificate of the validated chain for PKIX-TA
// (which may be a root only Roots supplies). It returns (nil, nil) when the
// chain validates but no record matched.
func (v *verifier) pkix() (*Match, error) {
	// Untrusted material: what the peer sent, plus Full certificates from
	// TA records. OpenSSL adds those too (SSL_dane_tlsa_add), so that a
	// "0 0 0" record can supply an intermediate the peer left out.
	inter := x509.NewCertPool()
	for _, c := range v.chain[1:] {
		inter.AddCert(c)
	}
	for i := range v.recs {
		if c := v.recs[i].cert; c != nil {
			inter.AddCert(c)
		}
	}

	// PKIX-EE is tried on the leaf before the chain is built, as OpenSSL
	// does (dane_verify → dane_match at depth 0): a PKIX-EE match stops the
	// search for PKIX-TA matches, and its depth survives a PKIX failure.
	var ee *Match
	for i := range v.recs {
		p := &v.recs[i]
		if p.Usage == PKIXEE && p.matches(v.leaf) {
			ee = &Match{Record: p.Record, Depth: 0}
			break
		}
	}

	chains, err := v.leaf.Verify(x509.VerifyOptions{
		Roots:         v.o.Roots,
		Intermediates: inter,
		CurrentTime:   v.now,
		// RFC 7671 is about TLS servers, and OpenSSL's DANE verification
		// uses the "ssl_server" purpose; a client verified by
		// draft-ietf-dance-client-auth needs clientAuth instead.
		KeyUsages: []x509.ExtKeyUsage{v.o.Purpose.extKeyUsage()},
	})
	if err != nil {
		m := ee
		if m == nil {
			m = v.pkixTAPresented()
		}
		return nil, &PKIXError{Err: err, Match: m}
	}
	if ee != nil {
		ee.Chain = chains[0]
		return ee, nil
	}

	var best *Match
	for _, ch := range chains {
		for d := 1; d < len(ch); d++ {
			if best != nil && d >= best.Depth {
				break
			}
			for i := range v.recs {
				p := &v.recs[i]
				if p.Usage == PKIXTA && p.matches(ch[d]) {
					best = &Match{Record: p.Record, Depth: d, Chain: ch}
					break
				}
			}
		}
	}
	return best, nil
}

// pkixTAPresented finds a PKIX-TA match among the presented CA
// certificates, to say in a PKIXError which record had matched.
func (v *verifier) pkixTAPresented() *Match {
	for d, c := range v.chain {
		if d == 0 {
			continue
		}
		for i := range v.recs {
			p := &v.recs[i]
			if p.Usage == PKIXTA && p.matches(c) {
				return &Match{Record: p.Record, Depth: d}
			}
		}
	}
	return nil
}
