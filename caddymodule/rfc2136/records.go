package rfc2136

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// canonicalZone returns zone fully qualified, or an error if it is not a
// domain name. The zone's spelling is kept (names compare without case,
// RFC 4343).
func canonicalZone(zone string) (string, error) {
	if zone == "" || zone == "@" {
		return "", fmt.Errorf("empty zone name")
	}
	z := dns.Fqdn(zone)
	if _, ok := dns.IsDomainName(z); !ok {
		return "", fmt.Errorf("invalid zone name %q", zone)
	}
	return z, nil
}

// ownerName builds the fully qualified owner name of a libdns record name
// in zone (fully qualified). libdns names are relative to the zone, "@"
// is the apex; a name with a trailing dot is taken as fully qualified and
// must then be at or below the zone (ErrOutsideZone otherwise): it is the
// only way a libdns record can name something outside the zone, and we
// refuse it before anything is sent.
func ownerName(name, zone string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty record name (libdns: use \"@\" for the zone apex)", ErrRecord)
	case name == "@":
		return zone, nil
	case strings.HasSuffix(name, "."):
		if _, ok := dns.IsDomainName(name); !ok {
			return "", fmt.Errorf("%w: invalid name %q", ErrRecord, name)
		}
		if !dns.IsSubDomain(zone, name) {
			return "", fmt.Errorf("%w: %q is not in zone %q", ErrOutsideZone, name, zone)
		}
		return name, nil
	}
	for _, label := range dns.SplitDomainName(name) {
		if label == "@" {
			// "_443._tcp.@" means the apex to whoever wrote it, but is a
			// label "@" to the DNS: refuse rather than guess.
			return "", fmt.Errorf("%w: name %q: \"@\" stands for the apex only as the whole name", ErrRecord, name)
		}
	}
	fqdn := name + "." + zone
	if _, ok := dns.IsDomainName(fqdn); !ok {
		return "", fmt.Errorf("%w: invalid name %q", ErrRecord, name)
	}
	// A relative name is below the zone by construction, unless it
	// escapes its dots; check the labels, not the string.
	if !dns.IsSubDomain(zone, fqdn) {
		return "", fmt.Errorf("%w: %q is not in zone %q", ErrOutsideZone, name, zone)
	}
	return fqdn, nil
}

// relativeName is the libdns name of the owner fqdn in zone: "@" for the
// apex, else the labels above the zone. Labels are compared, not string
// suffixes ("wwwexample.test." is not in "example.test.").
func relativeName(fqdn, zone string) string {
	n := dns.CountLabel(fqdn) - dns.CountLabel(zone)
	if n <= 0 {
		return "@"
	}
	idx := dns.Split(fqdn)
	return strings.TrimSuffix(fqdn[:idx[n]], ".")
}

// updateMetaTypes are the types that never appear in an UPDATE's update
// section as data (RFC 2136 §3.4.1.2: FORMERR), plus the pseudo-RRs.
var updateMetaTypes = map[uint16]bool{
	dns.TypeANY: true, dns.TypeAXFR: true, dns.TypeIXFR: true, dns.TypeMAILA: true,
	dns.TypeMAILB: true, dns.TypeTSIG: true, dns.TypeOPT: true, dns.TypeTKEY: true,
}

// maxTTL is the largest TTL (RFC 2181 §8: 2^31 - 1 seconds).
const maxTTL = math.MaxInt32

// recordType returns the type code of a libdns type string.
func recordType(t string) (uint16, error) {
	code, ok := dns.StringToType[strings.ToUpper(t)]
	if !ok {
		return 0, fmt.Errorf("%w: unknown type %q", ErrRecord, t)
	}
	if updateMetaTypes[code] {
		return 0, fmt.Errorf("%w: type %s cannot be published (RFC 2136 §3.4.1.2)", ErrRecord, t)
	}
	return code, nil
}

// toDNS turns a libdns record into a DNS RR owned in zone (fully
// qualified). It refuses what would not be exactly the one record asked
// for: a name outside the zone, an unknown or meta type, a TTL out of
// range, or data that parses as something else.
func toDNS(rec libdns.Record, zone string) (dns.RR, error) {
	r := rec.RR()
	owner, err := ownerName(r.Name, zone)
	if err != nil {
		return nil, err
	}
	if r.Type == "" {
		return nil, fmt.Errorf("%w: %s: empty type", ErrRecord, r.Name)
	}
	code, err := recordType(r.Type)
	if err != nil {
		return nil, err
	}
	if r.TTL < 0 || r.TTL/time.Second > maxTTL {
		return nil, fmt.Errorf("%w: %s %s: TTL %v out of range (RFC 2181 §8)", ErrRecord, r.Name, r.Type, r.TTL)
	}
	ttl := uint32(r.TTL / time.Second)
	hdr := dns.RR_Header{Name: owner, Rrtype: code, Class: dns.ClassINET, Ttl: ttl}
	if code == dns.TypeTXT || code == dns.TypeSPF {
		// libdns carries TXT data unescaped and unsplit.
		return txtRR(hdr, r.Data), nil
	}
	if strings.ContainsAny(r.Data, "\n\r") {
		// One record per call of the zone-file parser: a line break
		// could start a second record.
		return nil, fmt.Errorf("%w: %s %s: line break in data", ErrRecord, r.Name, r.Type)
	}
	if strings.TrimSpace(r.Data) == "" {
		return nil, fmt.Errorf("%w: %s %s: empty data", ErrRecord, r.Name, r.Type)
	}
	text := fmt.Sprintf("%s %d IN %s %s", owner, ttl, dns.TypeToString[code], r.Data)
	rr, err := dns.NewRR(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s %q: %v", ErrRecord, r.Name, r.Type, r.Data, err)
	}
	if rr == nil {
		return nil, fmt.Errorf("%w: %s %s: no record in data %q", ErrRecord, r.Name, r.Type, r.Data)
	}
	h := rr.Header()
	if h.Rrtype != code || h.Class != dns.ClassINET || !strings.EqualFold(h.Name, owner) {
		return nil, fmt.Errorf("%w: %s %s: data %q parses as %s", ErrRecord, r.Name, r.Type, r.Data, h.String())
	}
	return rr, nil
}

// txtRR builds a TXT (or SPF) record from unescaped text: split into
// character-strings of at most 255 octets (RFC 1035 §3.3.14, RFC 7208
// §3.3), each escaped the way miekg/dns holds them.
func txtRR(hdr dns.RR_Header, text string) dns.RR {
	var parts []string
	for len(text) > 255 {
		parts = append(parts, escapeTXT(text[:255]))
		text = text[255:]
	}
	parts = append(parts, escapeTXT(text))
	if hdr.Rrtype == dns.TypeSPF {
		return &dns.SPF{Hdr: hdr, Txt: parts}
	}
	return &dns.TXT{Hdr: hdr, Txt: parts}
}

// escapeTXT escapes a character-string as miekg/dns stores it in
// TXT.Txt: `"` and `\` with a backslash, other non-printables as \DDD.
func escapeTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeTXT reverses escapeTXT (and the \X, \DDD escapes of RFC 1035
// §5.1 in general).
func unescapeTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v <= 255 {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// fromDNS turns a DNS RR of zone into the libdns record type for it
// (libdns.TXT, libdns.Address, ...; libdns.RR for types libdns has no
// struct for, such as TLSA).
func fromDNS(rr dns.RR, zone string) (libdns.Record, error) {
	h := rr.Header()
	r := libdns.RR{
		Name: relativeName(h.Name, zone),
		TTL:  time.Duration(h.Ttl) * time.Second,
		Type: dns.TypeToString[h.Rrtype],
	}
	if r.Type == "" {
		r.Type = fmt.Sprintf("TYPE%d", h.Rrtype)
	}
	switch v := rr.(type) {
	case *dns.TXT:
		r.Data = joinTXT(v.Txt)
	case *dns.SPF:
		r.Data = joinTXT(v.Txt)
	default:
		r.Data = strings.TrimPrefix(rr.String(), h.String())
	}
	return r.Parse()
}

func joinTXT(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(unescapeTXT(p))
	}
	return b.String()
}

// dnssecTypes are the records a signer maintains (RFC 4034, RFC 5155, RFC
// 7344, and BIND's private signing-state type 65534). GetRecords leaves
// them out, so SetRecords/DeleteRecords with its output never touch them.
var dnssecTypes = map[uint16]bool{
	dns.TypeRRSIG: true, dns.TypeNSEC: true, dns.TypeNSEC3: true, dns.TypeNSEC3PARAM: true,
	dns.TypeDNSKEY: true, dns.TypeCDS: true, dns.TypeCDNSKEY: true, 65534: true,
}
