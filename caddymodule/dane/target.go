package dane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
)

// Target is an upstream to authenticate, as the caller knows it before any
// DNS: where the connection goes and what the operator configured for it.
// Which TLSA base domain and which reference identifiers follow from it is
// decided here (Identity), never by the caller.
type Target struct {
	// Network is the dial network: "" or tcp, tcp4, tcp6. TLSA owner
	// names exist for TCP only here (RFC 6698 §3).
	Network string
	// Host is the host the connection goes to: a DNS name, which is then
	// the TLSA base domain (RFC 6698 §3), or an IP literal.
	Host string
	// Port is the TCP port; it is part of the TLSA owner name.
	Port int
	// Name is the TLSA base domain of an IP-literal Host (the operator's
	// `dane { name }`, placeholders expanded). It is ignored when Host is
	// a name: the configured upstream name is what DANE authenticates.
	Name string
	// SNI is the server name to send (tls_server_name); "" sends the TLSA
	// base domain. For an IP-literal Host without Name it is also the
	// TLSA base domain.
	SNI string
	// Unauthenticated names the source of Host when it is neither the
	// configuration nor DNSSEC, such as a dynamic upstream module that
	// reads unvalidated DNS. Such a host name is never a TLSA base domain
	// (the name would choose the accepted key); an IP-literal Host still
	// takes Name or SNI.
	Unauthenticated string

	// srv is set only by ResolveSRV: the DNSSEC proof that this endpoint
	// is a target of an SRV RRset (RFC 7673). It is unexported so that no
	// caller can claim a TLSA base domain that DNSSEC did not give.
	srv *srvProof

	// client is set only by ClientPolicy.Target: a TLS client's identity
	// (draft-ietf-dance-client-auth), decided from its certificate and the
	// operator's allow-list. Unexported for the same reason as srv.
	client *clientIdentity
}

// srvProof is how an SRV-derived Target came to be (RFC 7673 §3).
type srvProof struct {
	owner   string         // "_https._tcp.example.com."
	service string         // the service domain, "example.com."
	target  string         // the SRV target, "a.example.com."
	srvRes  *dnssec.Result // Secure or Insecure
	addrRes *dnssec.Result // the A/AAAA RRset Host came from: Secure or Insecure
}

// Identity is everything a verification depends on: a connection verified
// for one Identity must never carry a request whose Identity differs.
type Identity struct {
	// Host and Port are where the connection goes.
	Host string
	Port int
	// Base is the TLSA base domain, canonical ("api.example.").
	Base string
	// Names are the reference identifiers accepted in the certificate
	// (RFC 7671 §5.2.2, RFC 7673 §4.2), canonical; a secure CNAME chain
	// adds its other end at lookup time.
	Names []string
	// SNI is the server name sent in the ClientHello.
	SNI string
	// NoDANE, when set, is the Insecure RRset that rules DANE out before
	// any TLSA lookup: an SRV RRset (RFC 7673 §3.1) or the target's
	// address RRsets (§3.2). The connection is then refused, or
	// authenticated by PKIX under NoTLSAPKIX.
	NoDANE *dnssec.Result
	// Via is the owner of the SRV RRset the target was found through, "" if none.
	Via string
	// Owner is set for a TLS client's identity only (ClientPolicy.Target):
	// the TLSA owner name, which for a client is not _port._tcp.Base
	// (draft-ietf-dance-client-auth §2). Base and Names are then the
	// client's name; Host, Port and SNI are empty.
	Owner string
}

// Key is a short string that differs whenever the identities differ:
// connection pools and session caches are keyed by it, so that a
// connection verified for one identity is never handed to another.
func (id Identity) Key() string {
	sum := sha256.Sum256(id.AppendFields(make([]byte, 0, 256)))
	return hex.EncodeToString(sum[:16])
}

// AppendFields appends an unambiguous encoding of every field of id to b
// (each length-prefixed, so that no two field lists encode alike): the
// input of Key, for callers that hash more fields with it.
func (id Identity) AppendFields(b []byte) []byte {
	field := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	field(id.Host)
	b = strconv.AppendInt(append(b, 'p'), int64(id.Port), 10)
	field(id.Base)
	field(id.SNI)
	field(id.Via)
	for _, n := range id.Names {
		field(n)
	}
	if id.NoDANE != nil {
		// 'n' never starts a field either: the names end here, however
		// many there are.
		b = append(b, 'n')
		field(id.NoDANE.Name)
		field(id.NoDANE.Status.String())
	}
	if id.Owner != "" {
		// 'o' never starts a field (they start with a digit), so a client
		// identity never encodes like a server's, whose encoding this
		// leaves unchanged.
		b = append(b, 'o')
		field(id.Owner)
	}
	return b
}

// Identity decides the TLSA base domain, the reference identifiers and the
// SNI of t. The only error is a *Refusal with ReasonNoName.
//
// The rules: an SRV-derived target (ResolveSRV) uses the SRV target as
// the base domain and accepts it and the service domain (RFC 7673 §3.3,
// §4.2), or, when the SRV or address RRsets are Insecure, rules DANE out
// (§3.1, §3.2) and accepts only the names DNSSEC did authenticate. A named
// Host is its own base domain. An IP-literal Host takes Name, else SNI.
func (t Target) Identity() (Identity, error) {
	if t.client != nil {
		return t.client.identity(), nil
	}
	switch t.Network {
	case "", "tcp", "tcp4", "tcp6":
	default:
		return Identity{}, NoName(fmt.Errorf("network %q has no TLSA owner name (TCP only)", t.Network))
	}
	if t.Host == "" {
		return Identity{}, NoName(errors.New("no upstream host"))
	}
	if t.Port <= 0 || t.Port > 65535 {
		return Identity{}, NoName(fmt.Errorf("invalid port %d", t.Port))
	}
	host := strings.Trim(t.Host, "[]")
	id := Identity{Host: host, Port: t.Port, SNI: strings.TrimSuffix(t.SNI, ".")}
	isIP := net.ParseIP(host) != nil
	if !isIP {
		id.Host = dns.CanonicalName(host)
	}
	if p := t.srv; p != nil {
		id.Via = p.owner
		id.Base = p.target
		switch {
		case p.srvRes.Status != dnssec.Secure:
			// The target is whatever an unsigned answer said: only the
			// service domain the operator configured can be checked.
			id.NoDANE, id.Names = p.srvRes, []string{p.service}
			if id.SNI == "" {
				id.SNI = strings.TrimSuffix(p.service, ".")
			}
			return id, nil
		case p.addrRes.Status != dnssec.Secure:
			id.NoDANE = p.addrRes
		}
		id.Names = []string{p.target, p.service}
		if id.SNI == "" {
			id.SNI = strings.TrimSuffix(p.target, ".")
		}
		return id, nil
	}
	if !isIP && t.Unauthenticated != "" {
		return Identity{}, NoName(fmt.Errorf("upstream host %s comes from %s, which DNSSEC did not authenticate, so it cannot be the TLSA base domain: it would choose the accepted key", host, t.Unauthenticated))
	}
	base := host
	if isIP {
		switch {
		case t.Name != "":
			base = t.Name
		case t.SNI != "":
			base = t.SNI
		default:
			return Identity{}, NoName(fmt.Errorf("upstream %s is an IP address and neither `dane { name }` nor tls_server_name is set", t.Host))
		}
	}
	if err := ValidateName(base); err != nil {
		return Identity{}, NoName(err)
	}
	id.Base = dns.CanonicalName(base)
	id.Names = []string{id.Base}
	if id.SNI == "" {
		id.SNI = strings.TrimSuffix(id.Base, ".")
	}
	return id, nil
}
