package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Fault-injection helpers for faults_test.go: a DNS front end whose
// answers can be dropped, delayed, failed or rewritten, and a TLS upstream
// that knows which key it presented on each connection, so that a request
// reaching it on a connection whose key no published TLSA record matched
// is counted where it lands.

// dnsFault is what the fault DNS server does to a query.
type dnsFault int32

const (
	faultNone        dnsFault = iota
	faultDrop                 // no answer at all
	faultSlow                 // answer after faultSlowDelay
	faultServfail             // SERVFAIL
	faultTruncTCP             // UDP: empty TC=1 answer; TCP: connection closed unanswered
	faultStripSigs            // RRSIGs removed from every answer
	faultSpoofTLSA            // TLSA answered by a spoofer: attacker's key, no RRSIG, AD set
	faultForeignKeys          // DNSKEY and TLSA from the attacker's own signed copy of the zone
)

// faultSlowDelay is beyond any query timeout the suite configures.
const faultSlowDelay = 3 * time.Second

// exchanger answers a query in process (zonekit.Server).
type exchanger interface {
	Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error)
}

// faultDNS serves UDP and TCP on one loopback port, answering from honest
// (a signed zonekit tree) unless a fault is set.
type faultDNS struct {
	honest   exchanger
	attacker exchanger // answers for faultForeignKeys
	zone     string    // the zone the attacker forges, "faults.test."
	spoof    string    // TLSA RDATA the spoofer answers
	fault    atomic.Int32
	queries  atomic.Int64
	udp, tcp *dns.Server
	Addr     string
}

func (f *faultDNS) set(x dnsFault) { f.fault.Store(int32(x)) }

func (f *faultDNS) start() error {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return err
	}
	f.Addr = pc.LocalAddr().String()
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	f.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(f.serve), NotifyStartedFunc: notify}
	f.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(f.serve), NotifyStartedFunc: notify}
	go f.udp.ActivateAndServe()
	go f.tcp.ActivateAndServe()
	<-started
	<-started
	return nil
}

func (f *faultDNS) close() {
	if f.udp != nil {
		f.udp.Shutdown()
		f.tcp.Shutdown()
	}
}

func (f *faultDNS) serve(w dns.ResponseWriter, q *dns.Msg) {
	f.queries.Add(1)
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	if len(q.Question) != 1 {
		return
	}
	qn, qt := dns.CanonicalName(q.Question[0].Name), q.Question[0].Qtype
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var resp *dns.Msg
	var err error
	switch dnsFault(f.fault.Load()) {
	case faultDrop:
		return
	case faultSlow:
		time.Sleep(faultSlowDelay)
	case faultServfail:
		m := new(dns.Msg)
		m.SetRcode(q, dns.RcodeServerFailure)
		w.WriteMsg(m)
		return
	case faultTruncTCP:
		if !udp {
			w.Close()
			return
		}
		m := new(dns.Msg)
		m.SetReply(q)
		m.Truncated = true
		w.WriteMsg(m)
		return
	case faultSpoofTLSA:
		if qt == dns.TypeTLSA {
			m := new(dns.Msg)
			m.SetReply(q)
			m.AuthenticatedData = true
			rr, perr := dns.NewRR(fmt.Sprintf("%s 300 IN TLSA %s", qn, f.spoof))
			if perr == nil {
				m.Answer = []dns.RR{rr}
			}
			if o := q.IsEdns0(); o != nil {
				m.SetEdns0(1232, true)
			}
			w.WriteMsg(m)
			return
		}
	case faultForeignKeys:
		if dns.IsSubDomain(f.zone, qn) && qt != dns.TypeDS {
			resp, err = f.attacker.Exchange(ctx, q)
		}
	}
	if resp == nil && err == nil {
		resp, err = f.honest.Exchange(ctx, q)
	}
	if err != nil {
		return
	}
	if dnsFault(f.fault.Load()) == faultStripSigs {
		resp.Answer = stripSigs(resp.Answer)
		resp.Ns = stripSigs(resp.Ns)
	}
	if udp {
		size := dns.MinMsgSize
		if o := q.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), dns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

func stripSigs(rrs []dns.RR) []dns.RR {
	out := rrs[:0:0]
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeRRSIG {
			out = append(out, rr)
		}
	}
	return out
}

// keyedUpstream is a TLS server whose certificate can be swapped, and
// which records, per connection, the certificate it presented and whether
// that certificate's key was in the published TLSA RRset at handshake
// time. Requests on connections of unpublished keys are breaches.
type keyedUpstream struct {
	Port int
	addr string

	mu        sync.Mutex
	cur       string                     // label of the certificate presented now
	certs     map[string]tls.Certificate // by label
	published map[string]bool            // labels whose key the TLSA RRset holds
	// connKey maps each raw conn to the label it presented. Entries are
	// never deleted: a handler still running when Restart closes its
	// connection must find its label, or it would count as a breach
	// (a suite run makes a few thousand connections).
	connKey map[net.Conn]string
	srv     *http.Server

	resetEvery atomic.Int64 // when > 0: every n-th request is cut mid-response
	seq        atomic.Int64
	Resets     atomic.Int64 // responses cut mid-body
	Requests   atomic.Int64
	Breaches   atomic.Int64 // requests on a connection whose key was not published
	ByKey      sync.Map     // label → *atomic.Int64 requests
}

type connCtxKey struct{}

// keyedBodyPrefix starts every complete response body of a keyedUpstream,
// which is "ok key=<label>\n"; the load client checks it (completeBody).
const keyedBodyPrefix = "ok key="

// completeBody reports why a response body read through the proxy is not
// the whole body the keyedUpstream sent, or "" if it is: the read failed
// (connection cut before the promised length or the final chunk), the
// length differs from Content-Length, or a 200 body is not a complete
// "ok key=<label>\n".
func completeBody(resp *http.Response, body []byte, readErr error) string {
	switch {
	case readErr != nil:
		return fmt.Sprintf("body read failed after %d bytes: %v", len(body), readErr)
	case resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength:
		return fmt.Sprintf("body has %d bytes, Content-Length %d", len(body), resp.ContentLength)
	case resp.StatusCode == http.StatusOK &&
		(!strings.HasPrefix(string(body), keyedBodyPrefix) || !strings.HasSuffix(string(body), "\n")):
		return fmt.Sprintf("body %q is not a complete %q... line", body, keyedBodyPrefix)
	}
	return ""
}

func newKeyedUpstream(certs map[string]tls.Certificate, cur string, published ...string) (*keyedUpstream, error) {
	u := &keyedUpstream{certs: certs, cur: cur, published: map[string]bool{}, connKey: map[net.Conn]string{}}
	for _, p := range published {
		u.published[p] = true
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u.Port = ln.Addr().(*net.TCPAddr).Port
	u.addr = ln.Addr().String()
	u.serve(ln)
	return u, nil
}

// Present changes the certificate presented from the next handshake on.
func (u *keyedUpstream) Present(label string) {
	u.mu.Lock()
	u.cur = label
	u.mu.Unlock()
}

// Publish sets the labels whose keys the TLSA RRset holds.
func (u *keyedUpstream) Publish(labels ...string) {
	u.mu.Lock()
	u.published = map[string]bool{}
	for _, l := range labels {
		u.published[l] = true
	}
	u.mu.Unlock()
}

func (u *keyedUpstream) serve(ln net.Listener) {
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connCtxKey{}).(*tls.Conn)
		u.mu.Lock()
		label, ok := "", false
		if c != nil {
			label, ok = u.connKey[c.NetConn()]
		}
		okKey := ok && label != "" && label[0] != '!'
		u.mu.Unlock()
		u.Requests.Add(1)
		if !okKey {
			u.Breaches.Add(1)
		}
		n, _ := u.ByKey.LoadOrStore(label, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if k := u.resetEvery.Load(); k > 0 && u.seq.Add(1)%k == 0 {
			// Cut the connection mid-response: headers promised more.
			u.Resets.Add(1)
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			io.WriteString(w, "partial")
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			panic(http.ErrAbortHandler)
		}
		fmt.Fprintf(w, "%s%s\n", keyedBodyPrefix, label)
	})
	u.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connCtxKey{}, c)
		},
		TLSConfig: &tls.Config{
			NextProtos:             []string{"h2", "http/1.1"},
			SessionTicketsDisabled: true,
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				u.mu.Lock()
				defer u.mu.Unlock()
				label := u.cur
				if !u.published[label] {
					label = "!" + label // presented a key no TLSA record holds
				}
				u.connKey[hello.Conn] = label
				c := u.certs[u.cur]
				return &c, nil
			},
		},
	}
	go u.srv.ServeTLS(ln, "", "")
}

// Restart closes every connection and the listener, waits down, and
// listens again on the same port.
func (u *keyedUpstream) Restart(down time.Duration) error {
	u.srv.Close()
	time.Sleep(down)
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", u.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	u.serve(ln)
	return nil
}

func (u *keyedUpstream) Close() { u.srv.Close() }
