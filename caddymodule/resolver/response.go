package resolver

import "github.com/miekg/dns"

// Response returns the answer whose RCODE is this error (SERVFAIL,
// REFUSED, FORMERR, NOTIMP), or nil when no answer came (a network or
// protocol error). With it a caller that sees only an error, through an
// interface, can tell "the resolver answered, with an error" from "no
// answer": dnssec.TrustResolver's forwarder check takes a REFUSED for
// servers.bind CH TXT as the resolver's answer, and a timeout as none.
func (e *ServerError) Response() *dns.Msg {
	if e.Rcode < 0 {
		return nil
	}
	return e.Msg
}
