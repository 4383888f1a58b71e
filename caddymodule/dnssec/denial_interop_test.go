package dnssec

import (
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Denial cases found by replaying Unbound's testdata/val_*.rpl scenarios
// through the validator; each row names the scenario it stands for.

// optOutENT adds ent.example.test., an empty non-terminal whose only
// descendant is an unsigned delegation: in an opt-out zone it has no NSEC3
// (RFC 5155 §7.1), like Unbound's val_nsec3_entnodata_optout.
func optOutENT(tr *tree) {
	tr.zone.MustAdd("d.ent IN NS ns.elsewhere.test.")
}

func TestDenialInterop(t *testing.T) {
	tests := []struct {
		name   string
		modes  []int // indexes into denialModes
		qname  string
		qtype  uint16
		tamper func(tr *tree)
		status Status
		reason string
	}{
		{
			// val_nodata_entnx: the NSEC before an empty non-terminal has
			// a next name below it, so it shows that the name exists.
			name: "RFC4035-3.1.3.2/NXDOMAIN for an empty non-terminal (val_nodata_entnx)", modes: []int{0, 1},
			qname: "_tcp.svc.example.test.", qtype: dns.TypeA, status: Bogus,
			tamper: tamperAnswer("_tcp.svc.example.test.", dns.TypeA, func(r *dns.Msg) { r.Rcode = dns.RcodeNameError }),
		},
		{
			name: "RFC4035-3.1.3.2/control: NODATA for an empty non-terminal", modes: []int{0, 1},
			qname: "_tcp.svc.example.test.", qtype: dns.TypeA, status: Secure,
		},
		{
			// val_nsec3_entnodata_optout, val_nsec3_optout_ad,
			// val_nsec3_b5_wcnodata_nowc: no NSEC3 matches, none matches
			// the wildcard, and the next closer name is in an opt-out
			// span: an unsigned delegation may hold the name.
			name: "RFC5155-9.2/NODATA whose next closer name is in an opt-out span is Insecure (val_nsec3_entnodata_optout)", modes: []int{3},
			qname: "ent.example.test.", qtype: dns.TypeA, status: Insecure, reason: "opt-out NSEC3 span",
		},
		{
			name: "RFC5155-8.5/control: NODATA at an ENT with an NSEC3 of its own", modes: []int{1},
			qname: "ent.example.test.", qtype: dns.TypeA, status: Secure,
		},
		{
			// val_wild_pos: the RRSIG labels field does not count the
			// leading "*" (RFC 4034 §3.1.3): the wildcard owner itself is
			// not an expansion and needs no proof.
			name: "RFC4034-3.1.3/query for the wildcard owner itself (val_wild_pos)", modes: []int{0, 1, 3},
			qname: "*.wild.example.test.", qtype: dns.TypeTLSA, status: Secure,
		},
		{
			// val_cnametoinsecure: a server that holds parent and unsigned
			// child answers for the child with the parent's signed SOA and
			// no NSEC. The response proves nothing, but the chain of trust
			// proves plain.test. unsigned.
			name: "RFC4035-5.2/NODATA with a signed parent SOA and no NSEC below an unsigned cut is Insecure (val_cnametoinsecure)", modes: []int{0, 1},
			qname: "www.plain.test.", qtype: dns.TypeAAAA, status: Insecure,
			tamper: func(tr *tree) {
				soa := signedRRset(t, tr.tld, "test.", dns.TypeSOA)
				tamperAnswer("www.plain.test.", dns.TypeAAAA, func(r *dns.Msg) { r.Ns = soa })(tr)
			},
		},
		{
			name: "RFC4035-5.4/control: the same in a signed zone is Bogus", modes: []int{0, 1},
			qname: "svc.example.test.", qtype: dns.TypeAAAA, status: Bogus, reason: "without NSEC or NSEC3",
			tamper: func(tr *tree) {
				soa := signedRRset(t, tr.zone, "example.test.", dns.TypeSOA)
				tamperAnswer("svc.example.test.", dns.TypeAAAA, func(r *dns.Msg) { r.Ns = soa })(tr)
			},
		},
	}
	for _, tt := range tests {
		for _, i := range tt.modes {
			mode := denialModes[i]
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				tr := newTree(t, hooks{
					beforeDelegate: func(tr *tree) {
						plainDelegation(tr)
						optOutENT(tr)
					},
					beforeSign: func(tr *tree) {
						tr.zone.SetNSEC3(mode.params)
						tr.tld.SetNSEC3(mode.params)
					},
					afterSign: tt.tamper,
				})
				v := newValidator(t, tr.srv, dsAnchors(tr.root), newClock())
				r := v.Lookup(context.Background(), tt.qname, tt.qtype)
				t.Logf("%s", r)
				if r.Status != tt.status {
					t.Fatalf("status %s, want %s", r.Status, tt.status)
				}
				if tt.reason != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.reason)) {
					t.Errorf("error %v, want %q", r.Err, tt.reason)
				}
				checkErrType(t, r)
			})
		}
	}
}
