package dnssec

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// wildcardDNAMEAnswer makes the server answer www.x.wc.example.test. A as
// a server that synthesizes DNAMEs from wildcards would: the DNAME of
// *.wc, expanded to x.wc, with the zone's own proof that x.wc does not
// exist (which a wildcard expansion needs, RFC 4035 §5.3.4).
func wildcardDNAMEAnswer(tr *tree) {
	var dname []dns.RR
	for _, rr := range tr.zone.Records() {
		h := rr.Header()
		sig, isSig := rr.(*dns.RRSIG)
		if equalNames(h.Name, "*.wc.example.test.") && (h.Rrtype == dns.TypeDNAME || isSig && sig.TypeCovered == dns.TypeDNAME) {
			dname = append(dname, rr)
		}
	}
	answer := expandedAt(dname, "x.wc.example.test.")
	q := new(dns.Msg)
	q.SetQuestion("x.wc.example.test.", dns.TypeA)
	q.SetEdns0(4096, true)
	proof, err := tr.srv.Exchange(context.Background(), q)
	must(nil, err)
	forge(tr, "www.x.wc.example.test.", dns.TypeA, dns.RcodeSuccess, answer, proof.Ns)
}

// Follow-ups of the chain and denial work (issue 10 items 5, 12): the
// denial of a DS RRset at an anchor owner is judged under the anchor
// above, as the positive answer is; and a wildcard-expanded DNAME is not
// followed (RFC 4592 §4.4, Unbound val_dnamewc).
func TestAnchorOwnerDSDenialAndWildcardDNAME(t *testing.T) {
	runChainCases(t, []chainCase{
		{
			name:    "RFC4035-5.2/no DS at an island anchor, proven by the parent under the anchor above",
			anchors: anchorsOf(rootZone, subOf), hooks: hooks{beforeDelegate: withSub(true)},
			qname: subZone, qtype: dns.TypeDS, status: Insecure,
		},
		{
			name: "RFC4592-4.4/a DNAME synthesized from a wildcard owner is not followed",
			hooks: hooks{beforeSign: func(tr *tree) {
				tr.zone.MustAdd("*.wc 300 IN DNAME svc.example.test.", "www.svc 300 IN A 192.0.2.30")
			}, afterSign: wildcardDNAMEAnswer},
			anchors: anchorsOf(rootZone), qname: "www.x.wc.example.test.", qtype: dns.TypeA, status: Bogus,
			reason: "wildcard",
		},
	})
}
