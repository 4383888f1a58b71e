package dnssec

import (
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// algorithmSupported reports whether signatures of a DNSSEC algorithm are
// verified: RSA/SHA-256 (8), RSA/SHA-512 (10), ECDSA P-256 (13) and P-384
// (14), Ed25519 (15) (RFC 8624 §3.1 MUST/RECOMMENDED for validation).
func algorithmSupported(alg uint8) bool {
	switch alg {
	case dns.RSASHA256, dns.RSASHA512, dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519:
		return true
	}
	return false
}

// digestSupported reports whether DS digests of a type are checked: SHA-1
// (1, only when the DS RRset holds no SHA-2 digest, RFC 4509 §3), SHA-256
// (2) and SHA-384 (4) (RFC 8624 §3.3).
func digestSupported(t uint8) bool {
	return t == dns.SHA1 || t == dns.SHA256 || t == dns.SHA384
}

// zoneKeyUsable reports why a DNSKEY cannot authenticate anything ("" when
// it can): the Zone Key flag must be set and the protocol be 3 (RFC 4034
// §2.1.1, §2.1.2), and a revoked key (RFC 5011 §2.1) is never used.
func zoneKeyUsable(k *dns.DNSKEY) string {
	switch {
	case k.Flags&dns.ZONE == 0:
		return "Zone Key flag not set"
	case k.Protocol != 3:
		return fmt.Sprintf("protocol %d", k.Protocol)
	case k.Flags&dns.REVOKE != 0:
		return "revoked"
	}
	return ""
}

// sigTime converts an RRSIG inception or expiration field to the absolute
// time it denotes: the one nearest now under RFC 1982 serial number
// arithmetic (RFC 4034 §3.1.5).
func sigTime(field uint32, now time.Time) time.Time {
	n := now.Unix()
	return time.Unix(n+int64(int32(field-uint32(n))), 0).UTC()
}

// sigFailure ranks why one RRSIG did not authenticate an RRset; the
// highest-ranked failure over all RRSIGs is reported.
type sigFailure struct {
	rank int
	err  *BogusError
}

const (
	rankNone = iota
	rankUnsupported
	rankMalformed
	rankNoKey
	rankTime
	rankCrypto
)

// verifyRRset authenticates rrset (owner/type set) with one of sigs made by
// signer using one of keys (RFC 4035 §5.3). It returns the RRSIG and key
// that verified, or the most telling failure. Only RRSIGs whose signer is
// signer are considered.
func (v *Validator) verifyRRset(w *work, set string, rrset []dns.RR, sigs []*dns.RRSIG, keys keySet, signer string, now time.Time) (*dns.RRSIG, zoneKey, error) {
	if len(sigs) == 0 {
		return nil, zoneKey{}, bogusf(set, dns.ExtendedErrorCodeRRSIGsMissing, "no RRSIG over %s", set)
	}
	owner := rrset[0].Header().Name
	best := sigFailure{}
	fail := func(rank int, ede uint16, format string, args ...any) {
		if rank > best.rank {
			best = sigFailure{rank, bogusf(set, ede, format, args...)}
		}
	}
	tried := 0
	for _, sig := range sigs {
		if !equalNames(sig.SignerName, signer) {
			continue
		}
		if tried++; tried > maxRRSIGsPerRRset {
			break
		}
		algName := dns.AlgorithmToString[sig.Algorithm]
		if algName == "" {
			algName = fmt.Sprint(sig.Algorithm)
		}
		// RFC 4035 §5.3.1: the labels field counts the owner's labels
		// without a leading "*"; more than the owner has is invalid.
		if int(sig.Labels) > dns.CountLabel(owner) {
			fail(rankMalformed, dns.ExtendedErrorCodeDNSBogus, "RRSIG %s has labels %d, owner has %d", set, sig.Labels, dns.CountLabel(owner))
			continue
		}
		if !algorithmSupported(sig.Algorithm) {
			fail(rankUnsupported, dns.ExtendedErrorCodeDNSBogus, "RRSIG %s uses unsupported algorithm %s", set, algName)
			continue
		}
		// RFC 4035 §5.3.1: inception ≤ now ≤ expiration, RFC 4034 §3.1.5.
		inc, exp := sigTime(sig.Inception, now), sigTime(sig.Expiration, now)
		switch {
		case exp.Before(inc):
			fail(rankTime, dns.ExtendedErrorCodeSignatureExpiredBeforeValid, "RRSIG %s expires %s before its inception %s", set, exp.Format(time.RFC3339), inc.Format(time.RFC3339))
			continue
		case now.After(exp):
			fail(rankTime, dns.ExtendedErrorCodeSignatureExpired, "RRSIG %s expired %s", set, exp.Format(time.RFC3339))
			continue
		case now.Before(inc):
			fail(rankTime, dns.ExtendedErrorCodeSignatureNotYetValid, "RRSIG %s not valid before %s", set, inc.Format(time.RFC3339))
			continue
		}
		// RFC 4035 §5.3.1: key tag, algorithm and signer match a DNSKEY
		// of the signer zone. Colliding tags are tried, up to a cap.
		candidates := 0
		for _, k := range keys {
			if k.tag != sig.KeyTag || k.Algorithm != sig.Algorithm || !equalNames(k.Hdr.Name, signer) || zoneKeyUsable(k.DNSKEY) != "" {
				continue
			}
			if candidates++; candidates > v.limits.MaxKeysPerTag {
				break
			}
			if n := w.validations.Add(1); int(n) > v.limits.MaxValidations {
				return nil, zoneKey{}, indeterminatef(set, ErrLimitExceeded, "more than %d signature validations for one lookup", v.limits.MaxValidations)
			}
			if err := sig.Verify(k.DNSKEY, rrset); err != nil {
				fail(rankCrypto, dns.ExtendedErrorCodeDNSBogus, "RRSIG %s by key %d/%s does not verify: %v", set, sig.KeyTag, algName, err)
				continue
			}
			return sig, k, nil
		}
		if candidates == 0 {
			fail(rankNoKey, dns.ExtendedErrorCodeDNSKEYMissing, "no DNSKEY %d/%s in %s for RRSIG %s", sig.KeyTag, algName, signer, set)
		}
	}
	if best.err == nil {
		return nil, zoneKey{}, bogusf(set, dns.ExtendedErrorCodeRRSIGsMissing, "no RRSIG over %s by %s", set, signer)
	}
	return nil, zoneKey{}, best.err
}

// dsString names a DS record as "keytag/algorithm/digesttype".
func dsString(ds *dns.DS) string {
	return fmt.Sprintf("%d/%d/%d", ds.KeyTag, ds.Algorithm, ds.DigestType)
}

// dsMatches reports whether k is the key ds refers to (RFC 4034 §5.1.4,
// RFC 4035 §5.2): same owner, key tag and algorithm, and the digest of the
// owner name and DNSKEY RDATA equals the DS digest.
func dsMatches(ds *dns.DS, k zoneKey) bool {
	if ds.KeyTag != k.tag || ds.Algorithm != k.Algorithm || !equalNames(ds.Hdr.Name, k.Hdr.Name) {
		return false
	}
	return k.digestMatches(ds.DigestType, ds.Digest)
}

// keyMatches reports whether k is the DNSKEY trust anchor a (same owner,
// algorithm and public key; flags other than REVOKE may differ).
func keyMatches(a, k *dns.DNSKEY) bool {
	return equalNames(a.Hdr.Name, k.Hdr.Name) && a.Algorithm == k.Algorithm && a.Protocol == k.Protocol &&
		strings.TrimSpace(a.PublicKey) == strings.TrimSpace(k.PublicKey)
}

// usableDS returns the DS records this validator can use for a zone
// (RFC 4035 §5.2, RFC 6840 §5.2): supported algorithm and digest type, and
// SHA-1 only when no DS of the RRset has a SHA-2 digest and a supported
// algorithm. RFC 4509 §3 says to ignore SHA-1 DS records "if DS RRs with
// SHA-256 digests are present in the DS RRset": the rule is per RRset, not
// per key, so a SHA-1 DS for a key that has no SHA-2 DS of its own is
// ignored too (otherwise one weak digest for a second key is all an
// attacker needs). When none is usable it also returns the EDE explaining
// why: the zone is Insecure.
func usableDS(set []*dns.DS) ([]*dns.DS, uint16) {
	sha2 := false
	for _, ds := range set {
		if algorithmSupported(ds.Algorithm) && (ds.DigestType == dns.SHA256 || ds.DigestType == dns.SHA384) {
			sha2 = true
			break
		}
	}
	var out []*dns.DS
	algOK := false
	for _, ds := range set {
		if !algorithmSupported(ds.Algorithm) {
			continue
		}
		algOK = true
		if !digestSupported(ds.DigestType) || (ds.DigestType == dns.SHA1 && sha2) {
			continue
		}
		out = append(out, ds)
	}
	if len(out) > 0 {
		return out, 0
	}
	if algOK {
		return nil, dns.ExtendedErrorCodeUnsupportedDSDigestType
	}
	return nil, dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm
}
