// Package integration is caddy-dane's end-to-end suite: a Caddy built from
// ./cmd/caddy proxies to TLS upstreams that it must authenticate with DANE,
// against a real DNSSEC lab on loopback (NSD authoritative, Unbound
// recursive and validating), with OpenSSL as an independent second opinion.
//
// The tests skip unless DANE_INTEGRATION=1 or CI=true. Under CI=true a
// missing tool (nsd, unbound, ldns-keygen, ldns-signzone, openssl, curl,
// dig) fails the suite instead of skipping it.
//
//	cd <repo> && DANE_INTEGRATION=1 go test ./integration/ -count=1 -v
//
// Set DANE_KEEP=1 to keep the lab directory (zones, configs, logs).
//
// # The DNS tree
//
// One trust anchor: the DS of the KSK of a private, signed "test." zone
// (anchors.ds). Every other zone is delegated from it, so each security
// status is reached the way it is on the Internet, through the parent:
//
//	test.            signed (NSEC), the anchor
//	example.test.    signed (NSEC3, 0 iterations, RFC 9276), DS in test.   → secure
//	bogus.test.      signed, DS in test., TLSA RDATA altered after signing → bogus
//	expired.test.    signed with 2020 validity, DS in test.                → bogus
//	unsigned.test.   DS in test. for a key it never publishes, unsigned   → bogus
//	insecure.test.   delegated without DS (NSEC proof of no DS)           → insecure
//
// NSD serves all six zones on 127.0.0.1:<port>. Unbound stubs each of
// them, and ".", to NSD, so it never sends a packet off the machine; see
// ../shared/lab/PITFALLS.md (from the repository root) for the
// configuration it needs.
//
// Each TLS upstream listens on its own 127.0.0.1 port; the ports are chosen
// before the zones are written, since they are part of the TLSA owner name
// _<port>._tcp.<host>.
package integration
