package rfc2136

import (
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzUpdateAnswer: whatever the bytes of the answer to an UPDATE, it is
// a success only if it is a NOERROR response to that UPDATE that
// miekg/dns's own TSIG verifier (another implementation than tsigKey)
// accepts under our key; and it never panics.
func FuzzUpdateAnswer(f *testing.F) {
	secret, _ := ParseSecret(testSecret)
	c := &config{server: "127.0.0.1:53", key: &tsigKey{name: "update-key.", alg: dns.HmacSHA256, secret: secret}, timeout: time.Second, now: time.Now}
	m := new(dns.Msg)
	m.SetUpdate(testZone)
	rr, _ := dns.NewRR("_443._tcp.www.example.test. 300 IN TLSA " + tlsaData)
	m.Insert([]dns.RR{rr})
	_, mac, err := c.sign(m)
	if err != nil {
		f.Fatal(err)
	}
	answer := func(rcode int, tsigErr uint16) []byte {
		r := new(dns.Msg)
		r.SetRcode(m, rcode)
		r.Extra = nil
		r.SetTsig("update-key.", dns.HmacSHA256, 300, time.Now().Unix())
		r.IsTsig().Error = tsigErr
		b, _, err := dns.TsigGenerateWithProvider(r, c.key, mac, false)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	ok := answer(dns.RcodeSuccess, 0)
	if err := c.judgeUpdate(&Error{Op: "update"}, m, append([]byte(nil), ok...), mac); err != nil {
		f.Fatalf("the genuine answer is refused: %v", err)
	}
	f.Add(ok)
	f.Add(answer(dns.RcodeNotAuth, dns.RcodeBadSig))
	f.Add(answer(dns.RcodeRefused, 0))
	f.Add(answer(dns.RcodeNotAuth, dns.RcodeBadTime))
	unsigned, _ := new(dns.Msg).SetReply(m).Pack()
	f.Add(unsigned)
	f.Fuzz(func(t *testing.T, b []byte) {
		err := c.judgeUpdate(&Error{Op: "update"}, m, append([]byte(nil), b...), mac)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind == nil {
				t.Fatalf("error %v has no kind", err)
			}
			return
		}
		r := new(dns.Msg)
		if r.Unpack(b) != nil || r.Rcode != dns.RcodeSuccess || r.Id != m.Id || !r.Response {
			t.Fatalf("success on an answer that is not a NOERROR response to the UPDATE")
		}
		if err := dns.TsigVerify(append([]byte(nil), b...), testSecret, mac, false); err != nil {
			t.Fatalf("success on an answer miekg/dns does not verify: %v", err)
		}
	})
}
