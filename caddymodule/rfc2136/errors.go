package rfc2136

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// The kinds of failure. Every error returned by a Provider method is an
// *Error whose Kind is one of these, so callers (logs, metrics, retries)
// test it with errors.Is instead of parsing messages.
var (
	// ErrConfig: the provider's own settings are unusable (server, key
	// name, algorithm, secret, timeout).
	ErrConfig = errors.New("invalid provider configuration")
	// ErrRecord: an input record cannot be turned into a DNS RR (bad
	// name, type, TTL or data). Nothing was sent.
	ErrRecord = errors.New("invalid record")
	// ErrOutsideZone: an input record's owner name is not at or below the
	// zone. Nothing was sent (RFC 2136 §3.4.1.3 would make the server
	// answer NOTZONE; we refuse first).
	ErrOutsideZone = errors.New("record outside the zone")
	// ErrTSIGRefused: the server did not accept our TSIG: the response
	// carries a TSIG error (BADSIG, BADKEY, BADTIME, BADTRUNC; RFC 8945
	// §5.2, §5.4), wrong secret, unknown key name, wrong algorithm or
	// clock skew.
	ErrTSIGRefused = errors.New("TSIG refused by the server")
	// ErrZoneNotServed: the server is not authoritative for the zone
	// (NOTAUTH without a TSIG error, RFC 2136 §2.2), or says a name is
	// outside the zone it serves (NOTZONE).
	ErrZoneNotServed = errors.New("zone not served by the server")
	// ErrRefused: the server answered REFUSED: it serves no such zone to
	// us, or its policy (update-policy / allow-update / allow-transfer)
	// does not grant this key the operation (RFC 2136 §3.3).
	ErrRefused = errors.New("refused by the server")
	// ErrPrerequisite: a prerequisite rcode (YXDOMAIN, YXRRSET, NXDOMAIN,
	// NXRRSET; RFC 2136 §2.2, §3.2).
	ErrPrerequisite = errors.New("update prerequisite failed")
	// ErrServer: any other non-NOERROR rcode (FORMERR, SERVFAIL, NOTIMP).
	ErrServer = errors.New("server error")
	// ErrResponseTSIG: the server's answer is not signed, is signed with
	// another key or algorithm, or its MAC or time does not verify (RFC
	// 8945 §5.3). It is not trusted, whatever its rcode says.
	ErrResponseTSIG = errors.New("response TSIG does not verify")
	// ErrBadResponse: the answer does not belong to our request or is
	// malformed (ID, opcode, AXFR framing).
	ErrBadResponse = errors.New("malformed response")
	// ErrTimeout: no (complete) answer within the timeout. The outcome of
	// an UPDATE is then unknown.
	ErrTimeout = errors.New("timed out")
	// ErrNetwork: the connection failed before an answer arrived.
	ErrNetwork = errors.New("network error")
)

// Error is the error of every Provider method: which operation on which
// zone at which server failed, and why.
type Error struct {
	Op     string // "update" or "AXFR", or "config" / "records" before sending
	Zone   string // the zone, fully qualified
	Server string // host:port
	Kind   error  // one of the Err* values above
	// Rcode is the response's rcode, -1 when there was no response.
	Rcode int
	// TSIGError is the TSIG error field of the response (RFC 8945 §4.2),
	// 0 when none.
	TSIGError uint16
	Detail    string // what exactly, for the human reading the log
	Err       error  // the underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rfc2136: ")
	b.WriteString(e.Op)
	if e.Zone != "" {
		fmt.Fprintf(&b, " of zone %s", e.Zone)
	}
	if e.Server != "" {
		fmt.Fprintf(&b, " at %s", e.Server)
	}
	if e.Err == nil || !errors.Is(e.Err, e.Kind) { // else e.Err says it
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is/As both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// rcodeName is the mnemonic of an rcode or TSIG error (RFC 8945 §4.2
// reuses the rcode registry; 16 is BADSIG there, not BADVERS).
func rcodeName(rc int, tsig bool) string {
	if tsig && rc == dns.RcodeBadSig {
		return "BADSIG"
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// classify turns a response that is not a verified NOERROR into the kind
// of failure. verifyErr is the result of checking the response's TSIG.
// A response whose rcode says failure is a failure whether or not its
// TSIG verifies (a forged refusal cannot make us report success); the
// TSIG error field is looked at first because a server that rejects our
// signature cannot sign its answer (RFC 8945 §5.2.2: empty MAC).
func classify(e *Error, r *dns.Msg, verifyErr error) *Error {
	e.Rcode = r.Rcode
	if t := r.IsTsig(); t != nil && t.Error != 0 {
		e.Kind, e.TSIGError = ErrTSIGRefused, t.Error
		e.Detail = fmt.Sprintf("server answered %s with TSIG error %s (RFC 8945 §5.2)",
			rcodeName(r.Rcode, false), rcodeName(int(t.Error), true))
		return e
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		// A NOERROR that does not verify is not a success.
		e.Kind = ErrResponseTSIG
		e.Detail = "NOERROR answer"
		e.Err = verifyErr
		return e
	case dns.RcodeNotAuth:
		// No TSIG error field: a TSIG problem comes back with a TSIG RR
		// carrying it (RFC 8945 §5.2), so this is RFC 2136 §2.2 "not
		// authoritative for the zone".
		e.Kind = ErrZoneNotServed
		e.Detail = "server answered NOTAUTH: not authoritative for this zone (RFC 2136 §2.2)"
	case dns.RcodeNotZone:
		e.Kind = ErrZoneNotServed
		e.Detail = "server answered NOTZONE: a name is not within the zone it serves (RFC 2136 §2.2)"
	case dns.RcodeRefused:
		e.Kind = ErrRefused
		e.Detail = "server answered REFUSED: zone not served here, or its policy denies this key the operation"
	case dns.RcodeYXDomain, dns.RcodeYXRrset, dns.RcodeNameError, dns.RcodeNXRrset:
		e.Kind = ErrPrerequisite
		e.Detail = fmt.Sprintf("server answered %s (RFC 2136 §3.2)", rcodeName(r.Rcode, false))
	default:
		e.Kind = ErrServer
		e.Detail = fmt.Sprintf("server answered %s", rcodeName(r.Rcode, false))
	}
	if verifyErr != nil && r.Rcode != dns.RcodeNotAuth {
		// miekg/dns never verifies NOTAUTH answers (they are unsigned by
		// design); for the others say that the refusal is unauthenticated.
		e.Detail += fmt.Sprintf(" (answer not authenticated: %v)", verifyErr)
	}
	return e
}
