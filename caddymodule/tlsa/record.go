package tlsa

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Usage is the TLSA certificate usage field (RFC 6698 §2.1.1, acronyms from
// RFC 7218 §2.1).
type Usage uint8

// Certificate usages.
const (
	PKIXTA Usage = 0 // PKIX-TA: CA constraint, PKIX validation still required
	PKIXEE Usage = 1 // PKIX-EE: service certificate constraint, PKIX validation still required
	DANETA Usage = 2 // DANE-TA: trust anchor assertion
	DANEEE Usage = 3 // DANE-EE: domain-issued certificate
)

// String returns the RFC 7218 acronym, or the number for an unknown usage.
func (u Usage) String() string {
	switch u {
	case PKIXTA:
		return "PKIX-TA"
	case PKIXEE:
		return "PKIX-EE"
	case DANETA:
		return "DANE-TA"
	case DANEEE:
		return "DANE-EE"
	}
	return "Usage(" + strconv.Itoa(int(u)) + ")"
}

// Selector is the TLSA selector field (RFC 6698 §2.1.2, RFC 7218 §2.2).
type Selector uint8

// Selectors.
const (
	Cert Selector = 0 // the full certificate, DER
	SPKI Selector = 1 // the SubjectPublicKeyInfo, DER
)

// String returns the RFC 7218 acronym, or the number for an unknown selector.
func (s Selector) String() string {
	switch s {
	case Cert:
		return "Cert"
	case SPKI:
		return "SPKI"
	}
	return "Selector(" + strconv.Itoa(int(s)) + ")"
}

// MatchingType is the TLSA matching type field (RFC 6698 §2.1.3, RFC 7218
// §2.3).
type MatchingType uint8

// Matching types.
const (
	Full   MatchingType = 0 // exact match on the selected content
	SHA256 MatchingType = 1 // SHA2-256 digest of the selected content
	SHA512 MatchingType = 2 // SHA2-512 digest of the selected content
)

// String returns the RFC 7218 acronym, or the number for an unknown
// matching type.
func (m MatchingType) String() string {
	switch m {
	case Full:
		return "Full"
	case SHA256:
		return "SHA2-256"
	case SHA512:
		return "SHA2-512"
	}
	return "MatchingType(" + strconv.Itoa(int(m)) + ")"
}

// digestLen is the length of the certificate association data a digest
// matching type requires, or 0 for Full and unknown types.
func (m MatchingType) digestLen() int {
	switch m {
	case SHA256:
		return 32
	case SHA512:
		return 64
	}
	return 0
}

// maxDataLen is the largest certificate association data a TLSA RR can
// carry: RDATA is at most 65535 octets (RFC 1035 §3.2.1), three of which
// are the usage, selector and matching type.
const maxDataLen = 65535 - 3

// Record is one TLSA record (RFC 6698 §2.1): the three parameters and the
// certificate association data.
type Record struct {
	Usage        Usage
	Selector     Selector
	MatchingType MatchingType
	Data         []byte
}

// String returns the presentation form of RFC 6698 §2.2 with numeric
// parameters and lower-case hex: "3 1 1 abcd...".
func (r Record) String() string {
	var b strings.Builder
	b.Grow(12 + 2*len(r.Data))
	b.WriteString(strconv.Itoa(int(r.Usage)))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(int(r.Selector)))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(int(r.MatchingType)))
	b.WriteByte(' ')
	b.WriteString(hex.EncodeToString(r.Data))
	return b.String()
}

// short returns the record with its data cut to a few hex digits, for error
// messages that must stay one line long.
func (r Record) short() string {
	const keep = 8 // bytes, 16 hex digits: enough to tell records apart
	s := fmt.Sprintf("%d %d %d ", r.Usage, r.Selector, r.MatchingType)
	if len(r.Data) == 0 {
		return s + "(empty)"
	}
	if len(r.Data) <= keep {
		return s + hex.EncodeToString(r.Data)
	}
	return s + hex.EncodeToString(r.Data[:keep]) + "…"
}

// Equal reports whether r and o are the same record.
func (r Record) Equal(o Record) bool {
	return r.Usage == o.Usage && r.Selector == o.Selector &&
		r.MatchingType == o.MatchingType && string(r.Data) == string(o.Data)
}

// ParseRecord parses the presentation form of a TLSA record's RDATA
// (RFC 6698 §2.2): three parameters, then the certificate association data
// in hex. The parameters may be decimal numbers or RFC 7218 acronyms
// ("DANE-EE SPKI SHA2-256"); the hex may be in either case and may contain
// white space, as zone files split long data across words.
func ParseRecord(s string) (Record, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return Record{}, fmt.Errorf("parsing TLSA record %q: want usage, selector, matching type and data", clip(s))
	}
	var (
		r   Record
		err error
	)
	if r.Usage, err = parseUsage(f[0]); err != nil {
		return Record{}, fmt.Errorf("parsing TLSA record %q: %v", clip(s), err)
	}
	if r.Selector, err = parseSelector(f[1]); err != nil {
		return Record{}, fmt.Errorf("parsing TLSA record %q: %v", clip(s), err)
	}
	if r.MatchingType, err = parseMatchingType(f[2]); err != nil {
		return Record{}, fmt.Errorf("parsing TLSA record %q: %v", clip(s), err)
	}
	h := strings.Join(f[3:], "")
	if h == "" {
		// RFC 6698 §2.2: the data field is required in presentation form.
		return Record{}, fmt.Errorf("parsing TLSA record %q: no certificate association data", clip(s))
	}
	if len(h)/2 > maxDataLen {
		return Record{}, fmt.Errorf("parsing TLSA record %q: certificate association data longer than %d bytes", clip(s), maxDataLen)
	}
	if r.Data, err = hex.DecodeString(h); err != nil {
		return Record{}, fmt.Errorf("parsing TLSA record %q: certificate association data: %v", clip(s), err)
	}
	return r, nil
}

// clip shortens user input quoted in an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

func parseUsage(s string) (Usage, error) {
	switch strings.ToUpper(s) {
	case "PKIX-TA":
		return PKIXTA, nil
	case "PKIX-EE":
		return PKIXEE, nil
	case "DANE-TA":
		return DANETA, nil
	case "DANE-EE":
		return DANEEE, nil
	}
	n, err := parseField(s)
	if err != nil {
		return 0, fmt.Errorf("certificate usage %q: %v", s, err)
	}
	return Usage(n), nil
}

func parseSelector(s string) (Selector, error) {
	switch strings.ToUpper(s) {
	case "CERT":
		return Cert, nil
	case "SPKI":
		return SPKI, nil
	}
	n, err := parseField(s)
	if err != nil {
		return 0, fmt.Errorf("selector %q: %v", s, err)
	}
	return Selector(n), nil
}

func parseMatchingType(s string) (MatchingType, error) {
	switch strings.ToUpper(s) {
	case "FULL":
		return Full, nil
	case "SHA2-256":
		return SHA256, nil
	case "SHA2-512":
		return SHA512, nil
	}
	n, err := parseField(s)
	if err != nil {
		return 0, fmt.Errorf("matching type %q: %v", s, err)
	}
	return MatchingType(n), nil
}

// parseField parses an 8-bit unsigned decimal field (RFC 6698 §2.2).
func parseField(s string) (uint8, error) {
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a number or known acronym")
		}
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("not in 0-255")
	}
	return uint8(n), nil
}

// Usable returns nil when r can take part in matching, or an
// [*UnusableError] saying why not. RFC 7671 §4.1 (and RFC 6698 §4.1) make
// records with unknown parameters or malformed data "unusable": they are
// ignored, and a peer is refused only when no usable record is left.
func (r Record) Usable() error {
	_, err := r.prepare()
	return err
}

// prepared is a usable record with its data decoded where matching needs
// more than bytes: the certificate of a "0 0 0" or "2 0 0" record, and the
// public key of a "2 1 0" record.
type prepared struct {
	Record
	cert *x509.Certificate // TA usages, Cert Full: the certificate from DNS
	key  any               // DANE-TA SPKI Full: the bare public key, nil if Go cannot parse it
}

// prepare checks r and decodes what matching needs.
func (r Record) prepare() (prepared, error) {
	p := prepared{Record: r}
	unusable := func(format string, args ...any) (prepared, error) {
		return prepared{}, &UnusableError{Record: r, Reason: fmt.Sprintf(format, args...)}
	}
	switch r.Usage {
	case PKIXTA, PKIXEE, DANETA, DANEEE:
	default:
		return unusable("unknown certificate usage %d", r.Usage)
	}
	switch r.Selector {
	case Cert, SPKI:
	default:
		return unusable("unknown selector %d", r.Selector)
	}
	switch r.MatchingType {
	case Full, SHA256, SHA512:
	default:
		return unusable("unknown matching type %d", r.MatchingType)
	}
	if len(r.Data) == 0 {
		return unusable("empty certificate association data")
	}
	if len(r.Data) > maxDataLen {
		return unusable("certificate association data is %d bytes, more than a TLSA record holds (%d)", len(r.Data), maxDataLen)
	}
	if n := r.MatchingType.digestLen(); n != 0 && len(r.Data) != n {
		return unusable("%s digest is %d bytes, want %d", r.MatchingType, len(r.Data), n)
	}
	if r.MatchingType != Full {
		return p, nil
	}
	// Full data is compared as bytes, but trust-anchor records also serve as
	// certificates and keys in their own right (RFC 7671 §5.2.2): a "2 0 0"
	// or "2 1 0" anchor need not be presented, and OpenSSL adds "0 0 0"
	// certificates to the untrusted chain material. Like OpenSSL
	// (SSL_dane_tlsa_add), treat Full data that does not parse as unusable.
	switch {
	case r.Selector == Cert:
		c, err := x509.ParseCertificate(r.Data)
		if err != nil {
			return unusable("data is not a DER certificate: %v", err)
		}
		if r.Usage == PKIXTA || r.Usage == DANETA {
			p.cert = c
		}
	case r.Usage == DANETA:
		k, err := x509.ParsePKIXPublicKey(r.Data)
		if err != nil {
			return unusable("data is not a DER SubjectPublicKeyInfo: %v", err)
		}
		p.key = k
	}
	return p, nil
}
