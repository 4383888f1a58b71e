package zonekit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// maxCNAMEHops bounds the CNAME chain the server follows for one query, as
// a resolver would.
const maxCNAMEHops = 8

// ednsSize is the UDP payload size the server advertises.
const ednsSize = 1232

// Server answers queries from a set of zones like a recursive resolver
// queried with CD=1: from the deepest zone holding the name, DS from the
// parent side of a cut, CNAMEs inside the served zones followed, RRSIGs and
// NSECs included when the query has the DO bit. A name below a DNAME is
// answered with the DNAME RRset (and its RRSIGs) plus an unsigned CNAME
// synthesized from it, whose target is then followed like a CNAME's
// (RFC 6672 §3.2); a synthesized name over 255 octets gives YXDOMAIN. AD
// is never set.
type Server struct {
	// Tamper, when set, may change each response before it is returned;
	// it sees the query and the response. Set it before serving.
	Tamper func(q, resp *dns.Msg)

	mu      sync.RWMutex
	zones   []*Zone // deepest origin first
	queries atomic.Int64

	udp, tcp *dns.Server
}

// NewServer returns a server for zones.
func NewServer(zones ...*Zone) *Server {
	s := &Server{}
	s.AddZone(zones...)
	return s
}

// AddZone adds zones to the set the server answers from.
func (s *Server) AddZone(zones ...*Zone) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones = append(s.zones, zones...)
	sort.SliceStable(s.zones, func(i, j int) bool {
		return dns.CountLabel(s.zones[i].origin) > dns.CountLabel(s.zones[j].origin)
	})
}

// Queries returns how many queries the server has answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

// zoneFor returns the zone that answers qname/qtype: the deepest zone
// containing qname, except that DS at a zone's apex comes from the parent
// (RFC 4035 §3.1.4.1).
func (s *Server) zoneFor(qname string, qtype uint16) *Zone {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, z := range s.zones {
		if !dns.IsSubDomain(z.origin, qname) {
			continue
		}
		if qtype == dns.TypeDS && qname == z.origin && qname != "." {
			continue
		}
		return z
	}
	return nil
}

// Exchange answers q in process. It implements the dnssec.Exchanger
// interface.
func (s *Server) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.respond(q), nil
}

func (s *Server) respond(q *dns.Msg) *dns.Msg {
	s.queries.Add(1)
	resp := new(dns.Msg)
	resp.SetReply(q)
	resp.RecursionAvailable = true
	resp.AuthenticatedData = false
	opt := q.IsEdns0()
	do := opt != nil && opt.Do()
	if len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeFormatError
	} else {
		s.resolve(resp, dns.CanonicalName(q.Question[0].Name), q.Question[0].Qtype, do)
	}
	if opt != nil {
		resp.SetEdns0(ednsSize, do)
	}
	if s.Tamper != nil {
		s.Tamper(q, resp)
	}
	return resp
}

// resolve fills resp for qname/qtype, following CNAMEs (given or
// synthesized from a DNAME) across served zones.
func (s *Server) resolve(resp *dns.Msg, qname string, qtype uint16, do bool) {
	seen := map[string]bool{}
	for hop := 0; hop <= maxCNAMEHops && !seen[qname]; hop++ {
		seen[qname] = true
		z := s.zoneFor(qname, qtype)
		if z == nil {
			resp.Rcode = dns.RcodeRefused
			if hop > 0 {
				resp.Rcode = dns.RcodeServerFailure
			}
			return
		}
		r := z.answer(qname, qtype, do)
		for _, rr := range r.answer {
			// A DNAME met again on a chain is not repeated.
			if !containsRR(resp.Answer, rr) {
				resp.Answer = append(resp.Answer, rr)
			}
		}
		resp.Ns = r.ns
		resp.Rcode = r.rcode
		if r.target == "" || r.rcode != dns.RcodeSuccess {
			return
		}
		qname = r.target
	}
}

// ListenAndServe serves the zones over UDP and TCP on one loopback port and
// returns its address ("127.0.0.1:port"). UDP responses larger than the
// client's EDNS payload size (512 without EDNS) are truncated with TC set,
// so TCP fallback can be exercised. Close stops serving.
func (s *Server) ListenAndServe() (string, error) {
	if s.udp != nil {
		return "", errors.New("zonekit: server already listening")
	}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for try := 0; try < 10; try++ {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return "", fmt.Errorf("zonekit: listening on TCP next to UDP: %w", err)
	}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveDNS), NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveDNS), NotifyStartedFunc: notify}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	<-started
	<-started
	return pc.LocalAddr().String(), nil
}

func (s *Server) serveDNS(w dns.ResponseWriter, q *dns.Msg) {
	resp := s.respond(q)
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := q.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

// Close stops the listeners started by ListenAndServe.
func (s *Server) Close() error {
	var errs []error
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			errs = append(errs, srv.Shutdown())
		}
	}
	s.udp, s.tcp = nil, nil
	return errors.Join(errs...)
}

func containsRR(rrs []dns.RR, rr dns.RR) bool {
	for _, old := range rrs {
		if dns.IsDuplicate(old, rr) {
			return true
		}
	}
	return false
}
