// Package dane joins the two halves of DANE authentication of a TLS server
// (RFC 6698, RFC 7671, RFC 7673): a DNSSEC-validated TLSA lookup and the
// matching of the server's certificate chain against the records found.
//
// Every caller (the transport, `caddy dane check`, dane_monitor, the
// dane_srv upstream source, the client verifier) authenticates through one
// function, Authenticator.Authenticate, and the data flows one way:
//
//	Target ──► Identity (base domain, names, SNI) ──► TLSA owner _port._tcp.base.
//	       ──► dnssec.Prover ──► TLSA RRset (Secure only)
//	       ──► the caller's Handshake ──► presented chain ──► tlsa.Verify ──► *Verdict, or a *Refusal
//
// A TLS client (mutual DANE, draft-ietf-dance-client-auth; client.go)
// enters with the Target ClientPolicy.Target makes from its certificate:
// its TLSA owner is its name or _service.<name>, not _port._tcp.base, and
// it is verified for the clientAuth purpose (VerifyClient).
//
// A connection verified for one Identity serves that Identity only
// (Identity.Key). The TLSA base domain is never chosen by data DNSSEC did
// not prove: an SRV target is one only when ResolveSRV proved it, and a
// host name from an unauthenticated source is refused (Target.Unauthenticated).
//
// The Prover is the in-process dnssec.Validator or, when the operator opts
// in, dnssec.TrustResolver (the AD bit of a loopback validating resolver).
//
// Every failure on that path is a *Refusal whose Reason names the check that
// failed; callers log and count it, they never re-derive it. There is no
// "insecure" mode: anything but a Secure TLSA RRset with at least one usable
// record that matches the presented chain refuses the connection (fail
// closed). The one fallback is opt-in (NoTLSAPKIX): ordinary PKIX, only when
// DNSSEC proves the upstream publishes no TLSA records.
//
// The package has no Caddy import so that other programs (and our CLI) can
// use exactly what the transport uses.
package dane
