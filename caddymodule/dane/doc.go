// Package dane joins the two halves of DANE authentication of a TLS server
// (RFC 6698, RFC 7671, RFC 7673): a DNSSEC-validated TLSA lookup and the
// matching of the server's certificate chain against the records found.
//
// The data flows one way:
//
//	host + port ──► TLSA owner _port._tcp.host. ──► dnssec.Prover ──► TLSA RRset (Secure only)
//	handshake ──► presented chain ──► tlsa.Verify ──► allow, or a *Refusal
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
