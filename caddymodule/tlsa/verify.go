package tlsa

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"strings"
	"time"
)

// Options is the input of [Verify].
type Options struct {
	// Chain is the certificate chain the peer presented, leaf first. It is
	// untrusted: certificates other than the leaf are only candidates for
	// building a path.
	Chain []*x509.Certificate

	// Records is the DNSSEC-validated TLSA RRset, usable or not.
	Records []Record

	// Names are the reference identifiers: the TLSA base domain and the
	// name the service was configured with (RFC 7671 §5.2.2, §7). The leaf
	// must match at least one of them for DANE-TA(2), PKIX-TA(0) and
	// PKIX-EE(1) matches, and for DANE-EE(3) when CheckEENames is set. An
	// empty list matches nothing: a name check then fails.
	Names []string

	// Roots are the trust anchors for PKIX-TA(0) and PKIX-EE(1) records.
	// nil means the system roots. DANE usages never use them.
	Roots *x509.CertPool

	// Time is the verification time. The zero value means time.Now().
	Time time.Time

	// CheckEENames makes a DANE-EE(3) match also check the leaf's names.
	// RFC 7671 §5.1 says DANE-EE ignores names (the record binds the key
	// to the service already); OpenSSL checks them unless told not to.
	CheckEENames bool

	// Purpose is the role of the peer: PurposeServer (the zero value) or
	// PurposeClient. It selects the extended key usage that DANE-TA paths
	// (checkPathConstraints) and PKIX validation require: serverAuth or
	// clientAuth.
	Purpose Purpose

	// DigestPreference ranks the digest matching types for digest agility
	// (RFC 7671 §9): higher is preferred, and a rank of zero or less
	// disables that matching type. nil means SHA2-512 over SHA2-256. It is
	// called with SHA256 and SHA512 only.
	DigestPreference func(MatchingType) int
}

// Match is a successful TLSA match.
type Match struct {
	// Record is the record that matched.
	Record Record

	// Depth is the position, in the verified chain, of the certificate the
	// record matched, leaf = 0 (OpenSSL's SSL_get0_dane_authority). For a
	// DANE-TA(2) SPKI(1) Full(0) bare key, which is no certificate, it is
	// the depth of the top-most certificate the key signed.
	Depth int

	// Chain is the verified chain, leaf first: just the leaf for DANE-EE,
	// the path up to the trust anchor for DANE-TA (including a
	// certificate supplied by a "2 0 0" record), and the x509 chain for
	// PKIX usages.
	Chain []*x509.Certificate
}

// Verify matches a presented chain against TLSA records following RFC 6698
// and RFC 7671, with OpenSSL's behaviour where they leave a choice. It
// returns the match that authenticated the peer, or one of the typed
// errors of this package saying which check failed.
//
// Usages are tried in OpenSSL's order of precedence: DANE-EE(3) on the
// leaf, then DANE-TA(2) from the leaf upward (the lowest matching depth
// wins), then PKIX-EE(1) and PKIX-TA(0) within PKIX validation. A DANE
// match needs no PKIX validation at all (RFC 7671 §5.1, §5.2).
func Verify(o Options) (*Match, error) {
	chain := presented(o.Chain)
	if len(chain) == 0 {
		return nil, ErrEmptyChain
	}
	recs, unusable := selectRecords(o.Records, o.DigestPreference)
	if len(recs) == 0 {
		return nil, &NoUsableError{Unusable: unusable}
	}
	v := &verifier{o: o, chain: chain, leaf: chain[0], recs: recs, now: o.Time}
	if v.now.IsZero() {
		v.now = time.Now()
	}

	// DANE-EE(3): the leaf alone, regardless of its dates, issuer and (by
	// default) names: RFC 7671 §5.1.
	if m := v.daneEE(); m != nil {
		if o.CheckEENames {
			if err := v.checkNames(m); err != nil {
				return nil, err
			}
		}
		return m, nil
	}

	// A record that matched but whose chain or PKIX check failed is a more
	// useful refusal than "no match"; remember the first of each.
	var chainErr, pkixErr error
	if v.has(DANETA) {
		m, err := v.daneTA()
		switch {
		case err != nil:
			chainErr = err
		case m != nil:
			// RFC 7671 §5.2.2: with DANE-TA the leaf must match the
			// reference identifiers. A failure here ends the search: the
			// PKIX usages would check the same names.
			if err := v.checkNames(m); err != nil {
				return nil, err
			}
			return m, nil
		}
	}
	if v.has(PKIXEE) || v.has(PKIXTA) {
		m, err := v.pkix()
		switch {
		case err != nil:
			pkixErr = err
		case m != nil:
			if err := v.checkNames(m); err != nil {
				return nil, err
			}
			return m, nil
		}
	}
	if chainErr != nil {
		return nil, chainErr
	}
	if pkixErr != nil {
		return nil, pkixErr
	}
	tried := make([]Record, len(recs))
	for i, p := range recs {
		tried[i] = p.Record
	}
	return nil, &MismatchError{Tried: tried, Chain: o.Chain}
}

// maxPresented bounds the presented certificates Verify looks at. Building
// a DANE-TA path tries issuer candidates by signature, so a peer sending
// many certificates with the same name could otherwise make us do a
// quadratic number of signature checks. Real chains have 2 to 4
// certificates; OpenSSL's default depth limit is 100, crypto/x509 caps its
// own work similarly.
const maxPresented = 16

// presented returns the chain without nil entries and cut to maxPresented,
// or nil when the leaf is missing: a nil leaf is no certificate to match.
func presented(in []*x509.Certificate) []*x509.Certificate {
	if len(in) == 0 || in[0] == nil {
		return nil
	}
	clean := len(in) <= maxPresented
	for _, c := range in {
		clean = clean && c != nil
	}
	if clean {
		return in
	}
	out := make([]*x509.Certificate, 0, maxPresented)
	for _, c := range in {
		if c != nil && len(out) < maxPresented {
			out = append(out, c)
		}
	}
	return out
}

// defaultDigestPreference is RFC 7671 §9's advice in practice: the longer
// SHA-2 digest first. OpenSSL's library default is the same.
func defaultDigestPreference(m MatchingType) int {
	switch m {
	case SHA512:
		return 2
	case SHA256:
		return 1
	}
	return 0
}

// selectRecords returns the usable records that take part in matching, and
// why the others do not. Digest agility (RFC 7671 §9): for each usage and
// selector, only the digest records of the most preferred matching type
// present are used; Full(0) records always are.
func selectRecords(rs []Record, pref func(MatchingType) int) ([]prepared, []*UnusableError) {
	if pref == nil {
		pref = defaultDigestPreference
	}
	var (
		usable   = make([]prepared, 0, len(rs))
		unusable []*UnusableError
		best     [4][2]int // usage × selector → highest rank present
	)
	for _, r := range rs {
		p, err := r.prepare()
		if err != nil {
			unusable = append(unusable, err.(*UnusableError))
			continue
		}
		if p.MatchingType != Full {
			rank := pref(p.MatchingType)
			if rank <= 0 {
				unusable = append(unusable, &UnusableError{Record: r,
					Reason: "matching type " + p.MatchingType.String() + " disabled by the digest preference"})
				continue
			}
			if rank > best[p.Usage][p.Selector] {
				best[p.Usage][p.Selector] = rank
			}
		}
		usable = append(usable, p)
	}
	out := usable[:0]
	for _, p := range usable {
		if p.MatchingType == Full || pref(p.MatchingType) == best[p.Usage][p.Selector] {
			out = append(out, p)
		}
	}
	return out, unusable
}

// verifier holds one Verify call's state.
type verifier struct {
	o     Options             // by value: a pointer to Verify's argument would move it to the heap
	chain []*x509.Certificate // presented, no nils, leaf first
	leaf  *x509.Certificate
	recs  []prepared // usable, after digest agility
	now   time.Time
}

func (v *verifier) has(u Usage) bool {
	for i := range v.recs {
		if v.recs[i].Usage == u {
			return true
		}
	}
	return false
}

// matches reports whether p's data matches c (RFC 6698 §2.1.2, §2.1.3).
// Comparisons are constant-time: cheap, and no timing reveals how much of
// a record an attacker's certificate got right.
func (p *prepared) matches(c *x509.Certificate) bool {
	var content []byte
	switch p.Selector {
	case Cert:
		content = c.Raw
	case SPKI:
		content = c.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch p.MatchingType {
	case Full:
		return len(content) == len(p.Data) && subtle.ConstantTimeCompare(content, p.Data) == 1
	case SHA256:
		sum := sha256.Sum256(content)
		return subtle.ConstantTimeCompare(sum[:], p.Data) == 1
	case SHA512:
		sum := sha512.Sum512(content)
		return subtle.ConstantTimeCompare(sum[:], p.Data) == 1
	}
	return false
}

// daneEE matches DANE-EE(3) records against the leaf (RFC 7671 §5.1).
func (v *verifier) daneEE() *Match {
	for i := range v.recs {
		p := &v.recs[i]
		if p.Usage == DANEEE && p.matches(v.leaf) {
			return &Match{Record: p.Record, Depth: 0, Chain: v.chain[:1:1]}
		}
	}
	return nil
}

// checkNames checks the leaf against the reference identifiers; any one
// may match (RFC 7671 §7). crypto/x509 does the matching (RFC 6125 rules,
// SANs only: Go ignores the Common Name).
func (v *verifier) checkNames(m *Match) error {
	for _, n := range v.o.Names {
		n = strings.TrimSuffix(n, ".") // DNS names may come fully qualified
		if n != "" && v.leaf.VerifyHostname(n) == nil {
			return nil
		}
	}
	return &NameError{Match: m, Names: v.o.Names, Leaf: v.leaf.DNSNames}
}
