package rfc2136

import (
	"encoding/base64"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fault is how the in-process test server misbehaves.
type fault int

const (
	faultNone             fault = iota
	faultUnsigned               // NOERROR answer without a TSIG
	faultBadMAC                 // NOERROR answer whose MAC is altered
	faultOtherKey               // NOERROR answer signed with another secret
	faultOtherAlg               // NOERROR answer signed with another algorithm
	faultRcode                  // signed answer with rcode testServer.rcode
	faultBadTime                // NOTAUTH, TSIG error BADTIME, signed (RFC 8945 §5.2.3)
	faultSilent                 // never answers
	faultWrongID                // signed NOERROR answer with another message ID
	faultAXFRUnsigned           // AXFR: the second message carries no TSIG
	faultAXFRBadMAC             // AXFR: the second message's MAC is altered
	faultAXFRNotChained         // AXFR: later messages signed without chaining (§5.3.1)
	faultAXFRTruncatedMAC       // NOERROR answer with a MAC cut to 10 octets
	faultChangeAfterAXFR        // after the first AXFR, www A gains 192.0.2.3
)

// testServer is an authoritative server for one zone, in memory, that
// checks TSIG like BIND does (RFC 8945 §5.2), applies RFC 2136 updates
// (§3.4) and serves a TSIG-signed AXFR (RFC 5936) split into several
// messages, so that the chaining of §5.3.1 is exercised.
type testServer struct {
	t     *testing.T
	addr  string
	zone  string
	key   *tsigKey
	srv   *dns.Server
	mu    sync.Mutex
	rrs   []dns.RR
	fault fault
	rcode int
	recv  int // messages received
	ups   int // UPDATE messages applied
	quit  chan struct{}
}

const testZone = "example.test."

var testSecret = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	secret, _ := ParseSecret(testSecret)
	s := &testServer{t: t, zone: testZone, quit: make(chan struct{}), key: &tsigKey{name: "update-key.", alg: dns.HmacSHA256, secret: secret}}
	for _, line := range []string{
		"example.test. 3600 IN SOA ns.example.test. h.example.test. 1 3600 600 86400 300",
		"example.test. 3600 IN NS ns.example.test.",
		"ns.example.test. 3600 IN A 192.0.2.53",
		"www.example.test. 300 IN A 192.0.2.1",
		"www.example.test. 300 IN A 192.0.2.2",
		"www.example.test. 300 IN TXT \"hello world\"",
		"example.test. 3600 IN RRSIG SOA 13 2 3600 20300101000000 20200101000000 1 example.test. AAAA",
	} {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatal(err)
		}
		s.rrs = append(s.rrs, rr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	started := make(chan struct{})
	s.srv = &dns.Server{Listener: ln, Net: "tcp", Handler: s, TsigProvider: s.key,
		NotifyStartedFunc: func() { close(started) },
		// The default refuses opcode UPDATE with NOTIMP.
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }}
	go func() { _ = s.srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { close(s.quit); _ = s.srv.Shutdown() })
	return s
}

func (s *testServer) provider() *Provider {
	return &Provider{Server: s.addr, KeyName: "update-key", Secret: testSecret, Timeout: 2 * time.Second}
}

func (s *testServer) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recv
}

// zoneText is the zone's records in canonical text, for comparisons.
func (s *testServer) zoneText() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, rr := range s.rrs {
		out = append(out, rr.String())
	}
	return out
}

func (s *testServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	s.recv++
	f, rcode := s.fault, s.rcode
	s.mu.Unlock()
	t := req.IsTsig()
	m := new(dns.Msg)
	m.SetReply(req)
	if t == nil {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	sign := func(m *dns.Msg) { m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix()) }
	// RFC 8945 §5.2: a request whose TSIG does not verify gets NOTAUTH
	// with the TSIG error, unsigned (empty MAC) for BADKEY and BADSIG.
	if st := w.TsigStatus(); st != nil {
		m.Rcode = dns.RcodeNotAuth
		sign(m)
		switch {
		case errors.Is(st, dns.ErrSig):
			m.IsTsig().Error = dns.RcodeBadSig
		case errors.Is(st, dns.ErrTime):
			m.IsTsig().Error = dns.RcodeBadTime
		default: // unknown key name or algorithm (§5.2.1)
			m.IsTsig().Error = dns.RcodeBadKey
		}
		_ = w.WriteMsg(m)
		return
	}
	switch f {
	case faultSilent:
		<-s.quit
		return
	case faultBadTime:
		m.Rcode = dns.RcodeNotAuth
		sign(m)
		m.IsTsig().Error = dns.RcodeBadTime
		_ = w.WriteMsg(m)
		return
	case faultRcode:
		m.Rcode = rcode
		sign(m)
		_ = w.WriteMsg(m)
		return
	}
	if dns.CanonicalName(req.Question[0].Name) != s.zone {
		m.Rcode = dns.RcodeNotAuth // not authoritative (RFC 2136 §3.1.1)
		sign(m)
		_ = w.WriteMsg(m)
		return
	}
	if req.Opcode == dns.OpcodeQuery && req.Question[0].Qtype == dns.TypeAXFR {
		s.serveAXFR(w, req, f)
		return
	}
	if req.Opcode != dns.OpcodeUpdate {
		m.Rcode = dns.RcodeNotImplemented
		sign(m)
		_ = w.WriteMsg(m)
		return
	}
	m.Rcode = s.prerequisites(req.Answer)
	if m.Rcode == dns.RcodeSuccess {
		m.Rcode = s.apply(req.Ns)
	}
	if m.Rcode == dns.RcodeSuccess {
		s.mu.Lock()
		s.ups++
		s.mu.Unlock()
	}
	sign(m)
	s.answer(w, m, t.MAC, f)
}

// answer writes a signed answer, damaged as fault asks.
func (s *testServer) answer(w dns.ResponseWriter, m *dns.Msg, requestMAC string, f fault) {
	key := s.key
	switch f {
	case faultUnsigned:
		m.Extra = m.Extra[:len(m.Extra)-1]
		_ = w.WriteMsg(m)
		return
	case faultOtherKey:
		key = &tsigKey{name: s.key.name, alg: s.key.alg, secret: []byte("another secret")}
	case faultOtherAlg:
		key = &tsigKey{name: s.key.name, alg: dns.HmacSHA512, secret: s.key.secret}
		m.IsTsig().Algorithm = dns.HmacSHA512
	}
	data, _, err := dns.TsigGenerateWithProvider(m, key, requestMAC, false)
	if err != nil {
		s.t.Error(err)
		return
	}
	switch f {
	case faultBadMAC:
		data[len(data)-7] ^= 0xff // last MAC octet: before OrigID, Error, OtherLen
	case faultAXFRTruncatedMAC:
		data = truncateMAC(s.t, data, 10)
	case faultWrongID:
		data[1]++ // the MAC covers the original ID (RFC 8945 §4.3.1), not this one
	}
	_, _ = w.Write(data)
}

// truncateMAC rewrites the TSIG of a packed message with its MAC cut to n
// octets (RFC 8945 §5.2.2.1 truncation, which we never ask for).
func truncateMAC(t *testing.T, data []byte, n int) []byte {
	m := new(dns.Msg)
	if err := m.Unpack(data); err != nil {
		t.Fatal(err)
	}
	ts := m.IsTsig()
	ts.MAC = ts.MAC[:2*n]
	ts.MACSize = uint16(n)
	out, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// prerequisites checks a prerequisite section. Only "RRset exists (value
// dependent)" (RFC 2136 §2.4.2, class IN) is implemented: each RRset named
// must equal, RR for RR and ignoring TTLs, the zone's (§3.2.3), else
// NXRRSET. The other forms are FORMERR here (the provider sends none).
func (s *testServer) prerequisites(pre []dns.RR) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sets := map[[2]string][]dns.RR{}
	for _, p := range pre {
		h := p.Header()
		if h.Class != dns.ClassINET || h.Ttl != 0 {
			return dns.RcodeFormatError
		}
		k := [2]string{dns.CanonicalName(h.Name), dns.TypeToString[h.Rrtype]}
		sets[k] = append(sets[k], p)
	}
	for _, want := range sets {
		var have []dns.RR
		for _, rr := range s.rrs {
			if sameSet(rr, want[0]) {
				have = append(have, rr)
			}
		}
		if len(have) != len(want) {
			return dns.RcodeNXRrset
		}
		for _, w := range want {
			found := false
			for _, h := range have {
				found = found || dns.IsDuplicate(h, w)
			}
			if !found {
				return dns.RcodeNXRrset
			}
		}
	}
	return dns.RcodeSuccess
}

// apply runs an update section against the zone: the prescan of RFC 2136
// §3.4.1 first, then §3.4.2 on a copy that replaces the zone only if
// every RR applied (all or nothing).
func (s *testServer) apply(ups []dns.RR) int {
	for _, u := range ups {
		h := u.Header()
		if !dns.IsSubDomain(s.zone, h.Name) {
			return dns.RcodeNotZone
		}
		switch h.Class {
		case dns.ClassINET:
			if updateMetaTypes[h.Rrtype] {
				return dns.RcodeFormatError
			}
		case dns.ClassANY, dns.ClassNONE:
			if h.Ttl != 0 {
				return dns.RcodeFormatError
			}
		default:
			return dns.RcodeFormatError
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	zone := append([]dns.RR(nil), s.rrs...)
	for _, u := range ups {
		h := u.Header()
		apexKeep := func(rr dns.RR) bool { // §3.4.2.3: SOA and apex NS stay
			t := rr.Header().Rrtype
			return dns.CanonicalName(rr.Header().Name) == s.zone && (t == dns.TypeSOA || t == dns.TypeNS)
		}
		var next []dns.RR
		switch {
		case h.Class == dns.ClassINET:
			dup := false
			for _, rr := range zone {
				if dns.IsDuplicate(rr, u) {
					dup = true
				}
				if sameSet(rr, u) {
					rr.Header().Ttl = h.Ttl
				}
			}
			next = zone
			if !dup {
				next = append(next, dns.Copy(u))
			}
		case h.Class == dns.ClassANY && h.Rrtype == dns.TypeANY:
			for _, rr := range zone {
				if !sameName(rr, u) || apexKeep(rr) {
					next = append(next, rr)
				}
			}
		case h.Class == dns.ClassANY:
			for _, rr := range zone {
				if !sameSet(rr, u) || apexKeep(rr) {
					next = append(next, rr)
				}
			}
		case h.Class == dns.ClassNONE:
			for _, rr := range zone {
				c := dns.Copy(u)
				c.Header().Class = dns.ClassINET
				if !dns.IsDuplicate(rr, c) || rr.Header().Rrtype == dns.TypeSOA {
					next = append(next, rr)
				}
			}
		}
		zone = next
	}
	s.rrs = zone
	return dns.RcodeSuccess
}

func sameName(a, b dns.RR) bool {
	return dns.CanonicalName(a.Header().Name) == dns.CanonicalName(b.Header().Name)
}

func sameSet(a, b dns.RR) bool { return sameName(a, b) && a.Header().Rrtype == b.Header().Rrtype }

// serveAXFR sends SOA, the records two per message, SOA; each message
// signed and chained to the previous MAC, timers only after the first
// (RFC 8945 §5.3.1).
func (s *testServer) serveAXFR(w dns.ResponseWriter, req *dns.Msg, f fault) {
	s.mu.Lock()
	var soa dns.RR
	var body []dns.RR
	for _, rr := range s.rrs {
		if rr.Header().Rrtype == dns.TypeSOA {
			soa = rr
		} else {
			body = append(body, rr)
		}
	}
	s.mu.Unlock()
	if f == faultChangeAfterAXFR {
		// The zone changes once the transfer's content is taken and
		// before its last message leaves: a deferred change could land
		// after the client's UPDATE, which then deletes what it saw and
		// nothing proves the prerequisites (a CI flake).
		s.mu.Lock()
		if s.fault == faultChangeAfterAXFR {
			s.fault = faultNone
			rr, _ := dns.NewRR("www.example.test. 300 IN A 192.0.2.3")
			s.rrs = append(s.rrs, rr)
		}
		s.mu.Unlock()
	}
	chunks := [][]dns.RR{{soa}}
	for len(body) > 2 {
		chunks = append(chunks, body[:2])
		body = body[2:]
	}
	chunks = append(chunks, append(append([]dns.RR(nil), body...), soa))
	mac := req.IsTsig().MAC
	for i, ans := range chunks {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Answer = ans
		m.SetTsig(req.IsTsig().Hdr.Name, req.IsTsig().Algorithm, 300, time.Now().Unix())
		if i == 1 && f == faultAXFRUnsigned {
			m.Extra = nil
			data, _ := m.Pack()
			_, _ = w.Write(data)
			continue
		}
		timersOnly := i > 0
		if f == faultAXFRNotChained {
			timersOnly = false
		}
		data, next, err := dns.TsigGenerateWithProvider(m, s.key, mac, timersOnly)
		if err != nil {
			s.t.Error(err)
			return
		}
		mac = next
		if i == 1 && f == faultAXFRBadMAC {
			data[len(data)-7] ^= 0xff
		}
		if _, err := w.Write(data); err != nil {
			return
		}
	}
}
