package rfc2136

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/miekg/dns"
)

// DefaultAlgorithm is the TSIG algorithm when none is configured; RFC 8945
// §6 makes HMAC-SHA256 mandatory to implement.
const DefaultAlgorithm = "hmac-sha256"

// algorithms are the TSIG algorithms accepted (RFC 8945 §6). HMAC-MD5 is
// not: it is deprecated and miekg/dns no longer implements it.
var algorithms = map[string]func() hash.Hash{
	dns.HmacSHA256: sha256.New,
	dns.HmacSHA512: sha512.New,
	dns.HmacSHA384: sha512.New384,
	dns.HmacSHA224: sha256.New224,
	dns.HmacSHA1:   sha1.New,
}

// ParseAlgorithm returns the canonical TSIG algorithm name (e.g.
// "hmac-sha256.") for name, given with or without the trailing dot, in
// any case; "" means DefaultAlgorithm.
func ParseAlgorithm(name string) (string, error) {
	if name == "" {
		name = DefaultAlgorithm
	}
	c := dns.CanonicalName(name)
	if _, ok := algorithms[c]; !ok {
		return "", fmt.Errorf("unknown TSIG algorithm %q (accepted: hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1)", name)
	}
	return c, nil
}

// ParseSecret decodes a base64 TSIG secret, as BIND's `secret` and
// tsig-keygen print it.
func ParseSecret(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("empty TSIG secret")
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(secret))
	if err != nil {
		return nil, fmt.Errorf("TSIG secret is not base64: %v", err)
	}
	if len(b) == 0 {
		return nil, errors.New("empty TSIG secret")
	}
	return b, nil
}

// tsigKey is one TSIG key. It is a dns.TsigProvider that signs and
// verifies with this key only: a message signed with any other key name
// or algorithm does not verify (RFC 8945 §5.2.1, §5.3), and a truncated
// MAC is refused (we never ask for truncation, RFC 8945 §5.2.2.1).
type tsigKey struct {
	name   string // canonical key name, fully qualified
	alg    string // canonical algorithm name
	secret []byte
}

func (k *tsigKey) mac(msg []byte, t *dns.TSIG) ([]byte, error) {
	if dns.CanonicalName(t.Hdr.Name) != k.name {
		return nil, fmt.Errorf("TSIG key name %q, expected %q", t.Hdr.Name, k.name)
	}
	if dns.CanonicalName(t.Algorithm) != k.alg {
		return nil, fmt.Errorf("TSIG algorithm %q, expected %q", t.Algorithm, k.alg)
	}
	h := hmac.New(algorithms[k.alg], k.secret)
	h.Write(msg)
	return h.Sum(nil), nil
}

// Generate implements dns.TsigProvider.
func (k *tsigKey) Generate(msg []byte, t *dns.TSIG) ([]byte, error) { return k.mac(msg, t) }

// Verify implements dns.TsigProvider.
func (k *tsigKey) Verify(msg []byte, t *dns.TSIG) error {
	want, err := k.mac(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil {
		return fmt.Errorf("TSIG MAC is not hex: %v", err)
	}
	if len(got) != len(want) {
		return fmt.Errorf("TSIG MAC is %d bytes, expected %d (truncated MACs are not accepted)", len(got), len(want))
	}
	if !hmac.Equal(got, want) {
		return dns.ErrSig
	}
	return nil
}

var _ dns.TsigProvider = (*tsigKey)(nil)
