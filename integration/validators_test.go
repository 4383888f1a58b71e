package integration

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/internal/testenv"
)

// TestValidatorsAgree runs every DNSSEC scenario through our validator,
// Unbound and BIND's delv on the same signed zones: the classes (secure,
// insecure, bogus) must be equal, and equal to what the RFCs say.
func TestValidatorsAgree(t *testing.T) {
	if !enabled() {
		t.Skip("set DANE_INTEGRATION=1 (or CI=true) to cross-check against Unbound and delv")
	}
	for _, tool := range validatorTools {
		testenv.NeedTool(t, tool)
	}
	l, err := StartValidatorLab(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tests := []struct {
		scenario string
		qname    string
		qtype    uint16
		want     string
		delv     string // delv's class when BIND is known to differ (documented)
	}{
		{"secure positive", "www.nsec.test.", dns.TypeA, "secure", ""},
		{"secure NXDOMAIN (NSEC)", "nope.nsec.test.", dns.TypeA, "secure", ""},
		{"secure NXDOMAIN (NSEC3)", "nope.nsec3.test.", dns.TypeA, "secure", ""},
		{"secure NXDOMAIN (NSEC3, salt, 10 iterations)", "nope.salted.test.", dns.TypeA, "secure", ""},
		{"secure NODATA (NSEC)", "www.nsec.test.", dns.TypeTXT, "secure", ""},
		{"secure NODATA (NSEC3)", "www.nsec3.test.", dns.TypeTXT, "secure", ""},
		{"wildcard positive (NSEC)", "x.wild.nsec.test.", dns.TypeA, "secure", ""},
		{"wildcard positive (NSEC3)", "x.wild.nsec3.test.", dns.TypeA, "secure", ""},
		{"wildcard NODATA (NSEC)", "x.wild.nsec.test.", dns.TypeTXT, "secure", ""},
		{"wildcard NODATA (NSEC3)", "x.wild.nsec3.test.", dns.TypeTXT, "secure", ""},
		{"opt-out insecure delegation", "www.uns.optout.test.", dns.TypeA, "insecure", ""},
		// RFC 5155 §6: an opt-out span proves nothing secure below it.
		// Unbound (val_nsec3.c) agrees; BIND 9.18 marks the NXDOMAIN
		// "fully validated".
		{"opt-out NXDOMAIN", "nope.optout.test.", dns.TypeA, "insecure", "secure"},
		{"unsigned child under signed parent", "www.plain.test.", dns.TypeA, "insecure", ""},
		{"missing DNSKEY", "www.nokey.test.", dns.TypeA, "bogus", ""},
		{"DS digest mismatch", "www.dsbad.test.", dns.TypeA, "bogus", ""},
		{"expired RRSIG", "www.expired.test.", dns.TypeA, "bogus", ""},
		{"not-yet-valid RRSIG", "www.notyet.test.", dns.TypeA, "bogus", ""},
		{"wrong signer name", "www.signer.test.", dns.TypeA, "bogus", ""},
		{"stripped RRSIG", "www.stripped.test.", dns.TypeA, "bogus", ""},
		{"unknown DS algorithm", "www.unkalg.test.", dns.TypeA, "insecure", ""},
		{"CNAME chain, secure", "alias.nsec.test.", dns.TypeA, "secure", ""},
		{"CNAME chain, insecure target", "toplain.nsec.test.", dns.TypeA, "insecure", ""},
		// RFC 6672 §5.3.1: the signed DNAME is validated, the resolver's
		// unsigned synthesized CNAME is not needed.
		{"DNAME redirect, secure", "www.red.dname.test.", dns.TypeA, "secure", ""},
		{"DNAME redirect, NXDOMAIN at the target", "nope.red.dname.test.", dns.TypeA, "secure", ""},
		{"DNAME redirect, insecure target", "www.toplain.dname.test.", dns.TypeA, "insecure", ""},
		{"DNAME with a bad signature", "www.bad.dname.test.", dns.TypeA, "bogus", ""},
	}
	t.Logf("| scenario | query | ours | unbound | delv | RFC |")
	t.Logf("|---|---|---|---|---|---|")
	for _, tt := range tests {
		ours, detail := l.Ours(tt.qname, tt.qtype)
		ub, err := l.Unbound(tt.qname, tt.qtype)
		if err != nil {
			t.Errorf("%s: unbound: %v", tt.scenario, err)
		}
		dv, dout := l.Delv(tt.qname, tt.qtype)
		t.Logf("| %s | %s %s | %s | %s | %s | %s |", tt.scenario, tt.qname, dns.TypeToString[tt.qtype], ours, ub, dv, tt.want)
		wantDelv := tt.want
		if tt.delv != "" {
			wantDelv = tt.delv
		}
		if ours != ub || dv != wantDelv || ours != tt.want {
			t.Errorf("%s: ours %s (%s), unbound %s, delv %s, want %s\ndelv: %s", tt.scenario, ours, detail, ub, dv, tt.want, dout)
		}
	}
}
