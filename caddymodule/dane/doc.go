// Package dane joins the two halves of DANE authentication of a TLS server
// (RFC 6698, RFC 7671, RFC 7673): a DNSSEC-validated TLSA lookup and the
// matching of the server's certificate chain against the records found.
//
// The data flows one way:
//
//	host + port ──► TLSA owner _port._tcp.host. ──► dnssec.Validator ──► TLSA RRset (Secure only)
//	handshake ──► presented chain ──► tlsa.Verify ──► allow, or a *Refusal
//
// Every failure on that path is a *Refusal whose Reason names the check that
// failed; callers log and count it, they never re-derive it. There is no
// fallback to PKIX and no "insecure" mode: anything but a Secure TLSA RRset
// with at least one usable record that matches the presented chain refuses
// the connection (fail closed).
//
// The package has no Caddy import so that other programs (and our CLI) can
// use exactly what the transport uses.
package dane
