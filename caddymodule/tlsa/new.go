package tlsa

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"fmt"
)

// NewRecord computes the TLSA record with the given parameters for cert
// (RFC 6698 §2.1.2 selectors, §2.1.3 matching types).
func NewRecord(u Usage, s Selector, m MatchingType, cert *x509.Certificate) (Record, error) {
	var content []byte
	switch s {
	case Cert:
		content = cert.Raw
	case SPKI:
		content = cert.RawSubjectPublicKeyInfo
	default:
		return Record{}, fmt.Errorf("unknown selector %d", s)
	}
	return newRecord(u, s, m, content)
}

// NewKeyRecord computes the SPKI(1) TLSA record of a public key given as
// DER SubjectPublicKeyInfo.
func NewKeyRecord(u Usage, m MatchingType, spki []byte) (Record, error) {
	return newRecord(u, SPKI, m, spki)
}

func newRecord(u Usage, s Selector, m MatchingType, content []byte) (Record, error) {
	var data []byte
	switch m {
	case Full:
		data = append([]byte(nil), content...)
	case SHA256:
		sum := sha256.Sum256(content)
		data = sum[:]
	case SHA512:
		sum := sha512.Sum512(content)
		data = sum[:]
	default:
		return Record{}, fmt.Errorf("unknown matching type %d", m)
	}
	if u > DANEEE {
		return Record{}, fmt.Errorf("unknown certificate usage %d", u)
	}
	return Record{Usage: u, Selector: s, MatchingType: m, Data: data}, nil
}
