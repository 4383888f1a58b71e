// Package rfc2136 is a libdns provider for DNS servers that take RFC 2136
// dynamic updates signed with TSIG (RFC 8945): BIND, Knot, PowerDNS and
// others run by the operator. It changes records with UPDATE messages and
// reads the zone with a TSIG-signed AXFR (RFC 5936).
//
// Every operation is one TCP exchange with the configured server, signed
// with one key; it succeeds only when the server answers NOERROR with a
// TSIG that verifies under that same key. Every failure is an *Error
// whose Kind (ErrTSIGRefused, ErrZoneNotServed, ErrRefused, ...) says
// which check failed.
//
// Atomicity: AppendRecords, SetRecords and DeleteRecords each send ONE
// UPDATE message, which the server applies entirely or not at all (RFC
// 2136 §3.4). When they return an error with a server rcode, nothing was
// changed; after ErrTimeout or ErrNetwork the outcome is unknown.
//
// DNSSEC records (RRSIG, NSEC, NSEC3, NSEC3PARAM, DNSKEY, CDS, CDNSKEY
// and BIND's private type 65534) are maintained by the signing server:
// GetRecords leaves them out and DeleteRecords never matches them.
package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// Timeouts of one operation (dial, send, and the whole answer or
// transfer).
const (
	DefaultTimeout = 5 * time.Second
	MaxTimeout     = 2 * time.Minute
)

// Provider talks RFC 2136 to one server with one TSIG key. The zero value
// is not usable: Server, KeyName and Secret are required. A Provider is
// safe for concurrent use; it keeps no state between calls.
type Provider struct {
	// Server is the host:port of the primary server taking the updates.
	Server string `json:"server,omitempty"`
	// KeyName is the TSIG key's name, as in the server's `key` statement.
	KeyName string `json:"key_name,omitempty"`
	// KeyAlg is the TSIG algorithm: hmac-sha256 (default), hmac-sha512,
	// hmac-sha384, hmac-sha224 or hmac-sha1.
	KeyAlg string `json:"key_alg,omitempty"`
	// Secret is the key's secret, base64 encoded.
	Secret string `json:"secret,omitempty"`
	// Timeout bounds each operation; 0 means DefaultTimeout, and it may
	// not exceed MaxTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Now is the clock for the TSIG time signed (RFC 8945 §5.2.3: the
	// server refuses more than 300 s of skew with BADTIME); nil means
	// time.Now. For tests.
	Now func() time.Time `json:"-"`
}

// config is a Provider's settings, checked and decoded.
type config struct {
	server  string
	key     *tsigKey
	timeout time.Duration
	now     func() time.Time
}

// Check reports whether the Provider's settings are usable, without
// sending anything.
func (p *Provider) Check() error {
	_, err := p.config()
	return err
}

func (p *Provider) config() (*config, error) {
	cfgErr := func(format string, args ...any) error {
		return &Error{Op: "config", Server: p.Server, Kind: ErrConfig, Rcode: -1, Detail: fmt.Sprintf(format, args...)}
	}
	host, port, err := net.SplitHostPort(p.Server)
	if err != nil || host == "" || port == "" {
		return nil, cfgErr("server %q is not host:port", p.Server)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return nil, cfgErr("server %q: bad port %q", p.Server, port)
	}
	if p.KeyName == "" {
		return nil, cfgErr("no TSIG key name")
	}
	name := dns.CanonicalName(p.KeyName)
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, cfgErr("TSIG key name %q is not a domain name", p.KeyName)
	}
	alg, err := ParseAlgorithm(p.KeyAlg)
	if err != nil {
		return nil, cfgErr("%v", err)
	}
	secret, err := ParseSecret(p.Secret)
	if err != nil {
		return nil, cfgErr("%v", err)
	}
	timeout := p.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0 || timeout > MaxTimeout:
		return nil, cfgErr("timeout %v out of range (0 < timeout <= %v)", timeout, MaxTimeout)
	}
	now := p.Now
	if now == nil {
		now = time.Now
	}
	return &config{server: p.Server, key: &tsigKey{name: name, alg: alg, secret: secret}, timeout: timeout, now: now}, nil
}

// prepare checks the configuration, the zone and the records, and turns
// the records into DNS RRs. Nothing is sent when it fails.
func (p *Provider) prepare(zone string, recs []libdns.Record) (*config, string, []dns.RR, error) {
	c, err := p.config()
	if err != nil {
		return nil, "", nil, err
	}
	z, err := canonicalZone(zone)
	if err != nil {
		return nil, "", nil, &Error{Op: "records", Zone: zone, Server: p.Server, Kind: ErrRecord, Rcode: -1, Err: err}
	}
	rrs := make([]dns.RR, 0, len(recs))
	for _, rec := range recs {
		rr, err := toDNS(rec, z)
		if err != nil {
			kind := ErrRecord
			if errors.Is(err, ErrOutsideZone) {
				kind = ErrOutsideZone
			}
			return nil, "", nil, &Error{Op: "records", Zone: z, Server: p.Server, Kind: kind, Rcode: -1, Err: err}
		}
		rrs = append(rrs, rr)
	}
	return c, z, rrs, nil
}

// GetRecords returns the records of zone, read by AXFR; DNSSEC records
// are left out (see the package comment). The server must allow the key
// to transfer the zone (BIND: `allow-transfer { key <name>; };`).
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	c, z, _, err := p.prepare(zone, nil)
	if err != nil {
		return nil, err
	}
	rrs, err := c.axfr(ctx, z)
	if err != nil {
		return nil, err
	}
	return toLibdns(rrs, z)
}

func toLibdns(rrs []dns.RR, zone string) ([]libdns.Record, error) {
	out := make([]libdns.Record, 0, len(rrs))
	for _, rr := range rrs {
		if dnssecTypes[rr.Header().Rrtype] {
			continue
		}
		rec, err := fromDNS(rr, zone)
		if err != nil {
			return nil, &Error{Op: "AXFR", Zone: zone, Kind: ErrBadResponse, Rcode: -1,
				Detail: fmt.Sprintf("record %s", rr.String()), Err: err}
		}
		out = append(out, rec)
	}
	return out, nil
}

// AppendRecords adds recs to zone in one UPDATE (RFC 2136 §2.5.1 "Add To
// An RRset"). A record already in the zone is left as is by the server
// (§3.4.2.2), except that an RRset has one TTL: the server sets the
// RRset's TTL to the one given.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	c, z, rrs, err := p.prepare(zone, recs)
	if err != nil || len(rrs) == 0 {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetUpdate(z)
	m.Insert(rrs)
	if err := c.update(ctx, z, m); err != nil {
		return nil, err
	}
	return toLibdns(rrs, z)
}

// SetRecords makes recs the only members of their RRsets: for each
// (name, type) in recs, one UPDATE deletes the RRset (§2.5.2 "Delete An
// RRset") and adds the given records, so the change is atomic at the
// server (RFC 2136 §3.4: the whole update section or nothing).
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	c, z, rrs, err := p.prepare(zone, recs)
	if err != nil || len(rrs) == 0 {
		return nil, err
	}
	type rrset struct {
		name string
		typ  uint16
	}
	seen := map[rrset]bool{}
	var sets []dns.RR
	for _, rr := range rrs {
		k := rrset{dns.CanonicalName(rr.Header().Name), rr.Header().Rrtype}
		if !seen[k] {
			seen[k] = true
			sets = append(sets, rr)
		}
	}
	m := new(dns.Msg)
	m.SetUpdate(z)
	// RemoveRRset builds new class-ANY RRs; it does not modify sets. The
	// deletions come first: the server applies the update section in
	// order (RFC 2136 §3.4.2).
	m.RemoveRRset(sets)
	m.Insert(rrs)
	if err := c.update(ctx, z, m); err != nil {
		return nil, err
	}
	return toLibdns(rrs, z)
}

// deleteAttempts is how often DeleteRecords reads the zone and tries its
// guarded updates when the zone changed in between (NXRRSET).
const deleteAttempts = 3

// deleteBudget is the most octets of records DeleteRecords puts in one
// UPDATE (prerequisites and deletions, before name compression), leaving
// room for the header, zone section and TSIG in a 65535-octet message.
const deleteBudget = 60000

// DeleteRecords deletes the records of zone matching recs and returns
// those it deleted. As libdns defines it, a match is exact (name, type,
// TTL, data) except that an empty Type, a zero TTL or an empty Data
// match any. Since an UPDATE can neither match a TTL nor say what it
// deleted, the zone is read by AXFR first and the matching records are
// deleted one by one (§2.5.4 "Delete An RR From An RRset"), guarded by
// "RRset exists (value dependent)" prerequisites (§2.4.2) on every RRset
// they are deleted from: if one of them changed since the AXFR, the
// server deletes nothing (NXRRSET, §3.2.5), and the zone is read again,
// up to deleteAttempts times. So the records returned are exactly the
// records deleted. The zone's SOA is never matched (a server never
// deletes it, §3.4.2.4), nor are DNSSEC records.
//
// The deletions go in one UPDATE when they fit in one DNS message, else
// in several, each holding whole RRsets; each is atomic, and an error
// from a later one says how many records the earlier ones deleted.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	c, z, _, err := p.prepare(zone, nil)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	pats := make([]pattern, 0, len(recs))
	for _, rec := range recs {
		pat, err := newPattern(rec, z)
		if err != nil {
			kind := ErrRecord
			if errors.Is(err, ErrOutsideZone) {
				kind = ErrOutsideZone
			}
			return nil, &Error{Op: "records", Zone: z, Server: p.Server, Kind: kind, Rcode: -1, Err: err}
		}
		pats = append(pats, pat)
	}
	var deleted []libdns.Record
	partial := func(err error) error {
		var e *Error
		if len(deleted) > 0 && errors.As(err, &e) {
			e.Detail += fmt.Sprintf(" (%d records were deleted by the earlier updates of this call)", len(deleted))
		}
		return err
	}
attempts:
	for attempt := 1; ; attempt++ {
		zoneRRs, err := c.axfr(ctx, z)
		if err != nil {
			return nil, partial(err)
		}
		batches := matching(zoneRRs, pats)
		if len(batches) == 0 {
			return deleted, nil
		}
		for _, b := range batches {
			recs, err := toLibdns(b.del, z)
			if err != nil {
				return nil, partial(err)
			}
			m := new(dns.Msg)
			m.SetUpdate(z)
			m.Used(b.guard) // class IN, TTL 0: the RRsets as read (§2.4.2)
			m.Remove(b.del) // class NONE, TTL 0 (§2.5.4)
			err = c.update(ctx, z, m)
			var e *Error
			switch {
			case err == nil:
				deleted = append(deleted, recs...)
			case attempt < deleteAttempts && errors.As(err, &e) && e.Rcode == dns.RcodeNXRrset:
				continue attempts // the zone changed under us: read it again
			default:
				return nil, partial(err)
			}
		}
		return deleted, nil
	}
}

// deleteBatch is one guarded UPDATE of DeleteRecords: the records to
// delete, and every record of the RRsets they belong to, as read.
type deleteBatch struct{ del, guard []dns.RR }

// matching finds the records of zoneRRs that match one of pats, grouped
// by RRset into batches that each fit in one UPDATE. The records are
// copies (Used and Remove rewrite class and TTL).
func matching(zoneRRs []dns.RR, pats []pattern) []deleteBatch {
	type rrset struct {
		name string
		typ  uint16
	}
	var order []rrset
	sets := map[rrset]*deleteBatch{}
	for _, rr := range zoneRRs {
		h := rr.Header()
		k := rrset{dns.CanonicalName(h.Name), h.Rrtype}
		if sets[k] == nil {
			sets[k] = &deleteBatch{}
			order = append(order, k)
		}
		sets[k].guard = append(sets[k].guard, dns.Copy(rr))
		if h.Rrtype == dns.TypeSOA || dnssecTypes[h.Rrtype] {
			continue
		}
		for _, pat := range pats {
			if pat.matches(rr) {
				sets[k].del = append(sets[k].del, dns.Copy(rr))
				break
			}
		}
	}
	var out []deleteBatch
	var cur deleteBatch
	size := 0
	for _, k := range order {
		s := sets[k]
		if len(s.del) == 0 {
			continue
		}
		n := 0
		for _, rr := range s.del {
			n += dns.Len(rr)
		}
		for _, rr := range s.guard {
			n += dns.Len(rr)
		}
		if size > 0 && size+n > deleteBudget {
			out = append(out, cur)
			cur, size = deleteBatch{}, 0
		}
		cur.del = append(cur.del, s.del...)
		cur.guard = append(cur.guard, s.guard...)
		size += n
	}
	if len(cur.del) > 0 {
		out = append(out, cur)
	}
	return out
}

// pattern is one DeleteRecords input: its owner name, and what it fixes
// of type, TTL and data (zero values are wildcards).
type pattern struct {
	owner string // canonical
	typ   uint16 // 0: any type
	ttl   uint32 // 0: any TTL
	rr    dns.RR // the exact record when type and data are given
	data  string // data given without a type: compared as text
}

func newPattern(rec libdns.Record, zone string) (pattern, error) {
	r := rec.RR()
	owner, err := ownerName(r.Name, zone)
	if err != nil {
		return pattern{}, err
	}
	pat := pattern{owner: dns.CanonicalName(owner), data: r.Data}
	if r.TTL < 0 || r.TTL/time.Second > maxTTL {
		return pattern{}, fmt.Errorf("%w: %s: TTL %v out of range (RFC 2181 §8)", ErrRecord, r.Name, r.TTL)
	}
	pat.ttl = uint32(r.TTL / time.Second)
	if r.Type != "" {
		if pat.typ, err = recordType(r.Type); err != nil {
			return pattern{}, err
		}
		if r.Data != "" {
			if pat.rr, err = toDNS(rec, zone); err != nil {
				return pattern{}, err
			}
		}
	}
	return pat, nil
}

func (pat pattern) matches(rr dns.RR) bool {
	h := rr.Header()
	if dns.CanonicalName(h.Name) != pat.owner {
		return false
	}
	if pat.typ != 0 && h.Rrtype != pat.typ {
		return false
	}
	if pat.ttl != 0 && h.Ttl != pat.ttl {
		return false
	}
	switch {
	case pat.rr != nil:
		return dns.IsDuplicate(pat.rr, rr) // name, class, type, RDATA
	case pat.data != "":
		rec, err := fromDNS(rr, dns.Fqdn(pat.owner))
		return err == nil && rec.RR().Data == pat.data
	}
	return true
}

// Interface guards
var (
	_ libdns.RecordGetter   = (*Provider)(nil)
	_ libdns.RecordAppender = (*Provider)(nil)
	_ libdns.RecordSetter   = (*Provider)(nil)
	_ libdns.RecordDeleter  = (*Provider)(nil)
)
