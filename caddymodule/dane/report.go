package dane

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/caddy-dane/caddy-dane/caddymodule/dnssec"
	"github.com/caddy-dane/caddy-dane/caddymodule/tlsa"
)

// Verdicts of a Report.
const (
	Verified = "verified"
	Refused  = "refused"
)

// Report is the account of one DANE authentication, as `caddy dane check`
// prints it: the TLSA owner, the DNSSEC proof, every record, the presented
// chain, what matched or why nothing did, and the verdict. Its JSON form is
// a stable interface: fields may be added, never renamed or removed.
type Report struct {
	Host    string         `json:"host"`       // TLSA base domain
	Port    int            `json:"port"`       // TCP port
	Owner   string         `json:"tlsa_owner"` // "_443._tcp.host."
	DNSSEC  *LookupReport  `json:"dnssec,omitempty"`
	Records []RecordReport `json:"records"`
	Chain   []CertReport   `json:"chain"` // as presented, leaf first
	Match   *MatchReport   `json:"match,omitempty"`
	Verdict string         `json:"verdict"`          // Verified or Refused
	Reason  string         `json:"reason,omitempty"` // the Refusal's Reason
	Error   string         `json:"error,omitempty"`  // the Refusal, in full
	// Suggested is the DANE-EE SPKI SHA2-256 record ("3 1 1 ...") of the
	// presented leaf: what to publish if this server's key is the right one.
	Suggested string `json:"suggested_record,omitempty"`
}

// LookupReport is one validated RRset and the proof behind it, as
// `caddy dane lookup` prints it.
type LookupReport struct {
	Name     string       `json:"name"`
	Type     string       `json:"type"`
	Status   string       `json:"status"` // secure, insecure, bogus, indeterminate
	Rcode    string       `json:"rcode"`
	Reason   string       `json:"reason,omitempty"`
	EDE      uint16       `json:"ede,omitempty"` // RFC 8914 code
	Signer   string       `json:"signer,omitempty"`
	TTL      int64        `json:"ttl"` // seconds the result may be cached
	Cached   bool         `json:"cached"`
	Wildcard string       `json:"wildcard,omitempty"`
	CNAME    []string     `json:"cname,omitempty"`
	Records  []string     `json:"records"` // presentation format, one RR each
	Chain    []ZoneReport `json:"chain"`   // trust anchor first
	// ProvenBy is set when the status is a trusted resolver's
	// verdict (dnssec trust_resolver), not in-process validation; the
	// chain is then empty.
	ProvenBy string `json:"trusted_resolver,omitempty"`
}

// ZoneReport is one zone on the chain of trust (dnssec.ZoneStep).
type ZoneReport struct {
	Zone    string   `json:"zone"`
	Status  string   `json:"status"`
	KeyTags []uint16 `json:"key_tags,omitempty"`
	DS      []string `json:"ds,omitempty"` // "keytag/algorithm/digesttype"
	Anchor  bool     `json:"anchor,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

// RecordReport is one TLSA record and its fate.
type RecordReport struct {
	Record   string `json:"record"` // "3 1 1 <hex>"
	Usable   bool   `json:"usable"`
	Unusable string `json:"unusable,omitempty"` // why not (RFC 7671 §4.1)
	Matched  bool   `json:"matched"`
}

// CertReport describes one presented certificate.
type CertReport struct {
	Depth      int       `json:"depth"`
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	SPKISHA256 string    `json:"spki_sha256"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	DNSNames   []string  `json:"dns_names,omitempty"`
}

// MatchReport says which record authenticated the peer, at which depth of
// the chain (leaf = 0, as OpenSSL counts).
type MatchReport struct {
	Record string `json:"record"`
	Usage  string `json:"usage"` // RFC 7218 acronym
	Depth  int    `json:"depth"`
}

// CheckInput is what Check needs besides the Authenticator.
type CheckInput struct {
	Target Target // the server, as the transport would be given it
	// Fetch connects to the server, sending sni, and returns the chain it
	// presents, leaf first, without verifying it.
	Fetch func(ctx context.Context, sni string) ([]*x509.Certificate, error)
}

// Check authenticates a server exactly as the transport does
// (Authenticate) and reports every step. When the lookup refuses, the
// chain is still fetched, only for the report: it shows what the server
// presents and the record that would match it; the verdict is
// Authenticate's.
func (a *Authenticator) Check(ctx context.Context, in CheckInput) *Report {
	r := &Report{Port: in.Target.Port, Records: []RecordReport{}, Chain: []CertReport{}}
	var chain []*x509.Certificate
	fetched := false
	fetch := func(ctx context.Context, sni string) ([]*x509.Certificate, error) {
		fetched = true
		if in.Fetch == nil {
			return nil, errors.New("no way to reach the server")
		}
		var err error
		chain, err = in.Fetch(ctx, sni)
		return chain, err
	}
	v, err := a.Authenticate(ctx, in.Target, func(ctx context.Context, p Peer) error {
		r.Host, r.Owner = p.Identity.Base, Owner(p.Identity.Base, p.Identity.Port)
		c, err := fetch(ctx, p.Identity.SNI)
		if err != nil {
			return err
		}
		return p.Verify(c)
	})

	var set *TLSASet
	var ref *Refusal
	switch {
	case v != nil:
		set = v.Set
	case errors.As(err, &ref):
		if id, idErr := in.Target.Identity(); idErr == nil {
			r.Host, r.Owner = id.Base, Owner(id.Base, id.Port)
			if !fetched && in.Fetch != nil {
				_, _ = fetch(ctx, id.SNI) // for the report only: the verdict stands
			}
		}
	}
	var res *dnssec.Result
	var records []tlsa.Record
	switch {
	case set != nil:
		res, records = set.Result, set.Records
		r.Owner = set.Owner
	case ref != nil:
		res, records = ref.Result, ref.Records
		if ref.Owner != "" {
			r.Owner = ref.Owner
		}
	}
	if res != nil {
		r.DNSSEC = NewLookupReport(res)
	}
	for _, rec := range records {
		rr := RecordReport{Record: rec.String(), Usable: true}
		if err := rec.Usable(); err != nil {
			rr.Usable = false
			var ue *tlsa.UnusableError
			if errors.As(err, &ue) {
				rr.Unusable = ue.Reason
			} else {
				rr.Unusable = err.Error()
			}
		}
		r.Records = append(r.Records, rr)
	}
	for i, c := range chain {
		r.Chain = append(r.Chain, newCertReport(i, c))
	}
	if len(chain) > 0 && chain[0] != nil {
		if s, err := tlsa.NewRecord(tlsa.DANEEE, tlsa.SPKI, tlsa.SHA256, chain[0]); err == nil {
			r.Suggested = s.String()
		}
	}
	if v != nil {
		r.Verdict = Verified
		m := v.Match
		r.Match = &MatchReport{Record: m.Record.String(), Usage: m.Record.Usage.String(), Depth: m.Depth}
		for i := range r.Records {
			if records[i].Equal(m.Record) {
				r.Records[i].Matched = true
			}
		}
		return r
	}
	r.Verdict = Refused
	r.Error = err.Error()
	if ref != nil {
		r.Reason = string(ref.Reason)
	} else {
		// Not a verdict of DANE: the server could not be reached.
		r.Reason = string(ReasonHandshake)
	}
	return r
}

func newCertReport(depth int, c *x509.Certificate) CertReport {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return CertReport{
		Depth:      depth,
		Subject:    c.Subject.String(),
		Issuer:     c.Issuer.String(),
		SPKISHA256: hex.EncodeToString(sum[:]),
		NotBefore:  c.NotBefore.UTC(),
		NotAfter:   c.NotAfter.UTC(),
		DNSNames:   c.DNSNames,
	}
}

// NewLookupReport describes a validator result.
func NewLookupReport(res *dnssec.Result) *LookupReport {
	lr := &LookupReport{
		Name:     res.Name,
		Type:     dns.TypeToString[res.Type],
		Status:   res.Status.String(),
		Rcode:    dns.RcodeToString[res.Rcode],
		EDE:      res.EDE,
		Signer:   res.Signer,
		TTL:      int64(res.TTL / time.Second),
		Cached:   res.Cached,
		Wildcard: res.Wildcard,
		Records:  []string{},
		Chain:    []ZoneReport{},

		ProvenBy: res.ProvenBy,
	}
	if lr.Type == "" {
		lr.Type = fmt.Sprintf("TYPE%d", res.Type)
	}
	lr.Reason = dnssec.Reason(res.Err)
	for _, c := range res.CNAME {
		lr.CNAME = append(lr.CNAME, c.String())
	}
	for _, rr := range res.RRset {
		lr.Records = append(lr.Records, rr.String())
	}
	for _, z := range res.Chain {
		lr.Chain = append(lr.Chain, ZoneReport{Zone: z.Zone, Status: z.Status.String(),
			KeyTags: z.KeyTags, DS: z.DS, Anchor: z.Anchor, Reason: z.Reason})
	}
	return lr
}

// WriteText writes the report for a human reader.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "TLSA owner   %s\n", r.Owner)
	if r.DNSSEC != nil {
		writeLookup(&b, r.DNSSEC, "DNSSEC       ", true)
	}
	b.WriteString("TLSA records\n")
	if len(r.Records) == 0 {
		b.WriteString("  (none)\n")
	}
	for _, rec := range r.Records {
		state := "usable"
		if !rec.Usable {
			state = "unusable: " + rec.Unusable
		}
		if rec.Matched {
			state += ", matched"
		}
		fmt.Fprintf(&b, "  %s  (%s)\n", rec.Record, state)
	}
	b.WriteString("presented chain\n")
	if len(r.Chain) == 0 {
		b.WriteString("  (none)\n")
	}
	for _, c := range r.Chain {
		fmt.Fprintf(&b, "  %d subject %s\n    issuer  %s\n    spki sha256 %s\n    valid %s to %s\n",
			c.Depth, c.Subject, c.Issuer, c.SPKISHA256,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
		if len(c.DNSNames) > 0 {
			fmt.Fprintf(&b, "    names %s\n", strings.Join(c.DNSNames, ", "))
		}
	}
	if r.Match != nil {
		fmt.Fprintf(&b, "match        %s (%s) at depth %d\n", r.Match.Record, r.Match.Usage, r.Match.Depth)
	}
	if r.Verdict == Verified {
		b.WriteString("verdict      VERIFIED\n")
	} else {
		fmt.Fprintf(&b, "verdict      REFUSED (%s)\n  %s\n", r.Reason, r.Error)
		if r.Suggested != "" {
			fmt.Fprintf(&b, "the server's key as a DANE-EE record:\n  %s IN TLSA %s\n", r.Owner, r.Suggested)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteText writes the lookup for a human reader, like delv: the verdict,
// the records, and with trace the chain of trust zone by zone.
func (lr *LookupReport) WriteText(w io.Writer, trace bool) error {
	var b strings.Builder
	writeLookup(&b, lr, "; ", trace)
	for _, c := range lr.CNAME {
		b.WriteString(c + "\n")
	}
	for _, rr := range lr.Records {
		if lr.Status != dnssec.Secure.String() {
			// As delv: data that did not validate is shown commented out.
			b.WriteString("; ")
		}
		b.WriteString(rr + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeLookup(b *strings.Builder, lr *LookupReport, prefix string, trace bool) {
	fmt.Fprintf(b, "%s%s %s: %s (rcode %s", prefix, lr.Name, lr.Type, lr.Status, lr.Rcode)
	if lr.Signer != "" {
		fmt.Fprintf(b, ", signer %s", lr.Signer)
	}
	if lr.Cached {
		b.WriteString(", cached")
	}
	b.WriteString(")\n")
	pad := strings.Repeat(" ", len(prefix))
	if prefix == "; " {
		pad = ";   "
	}
	if lr.Reason != "" {
		fmt.Fprintf(b, "%sreason: %s\n", pad, lr.Reason)
	}
	if lr.EDE != 0 {
		fmt.Fprintf(b, "%sEDE %d (%s)\n", pad, lr.EDE, dns.ExtendedErrorCodeToString[lr.EDE])
	}
	if lr.Wildcard != "" {
		fmt.Fprintf(b, "%ssynthesized from %s\n", pad, lr.Wildcard)
	}
	if lr.ProvenBy != "" {
		fmt.Fprintf(b, "%sproof: the AD bit of %s (dnssec trust_resolver), not validated here\n", pad, lr.ProvenBy)
	}
	if !trace {
		return
	}
	for _, z := range lr.Chain {
		fmt.Fprintf(b, "%szone %s %s", pad, z.Zone, z.Status)
		if len(z.KeyTags) > 0 {
			tags := make([]string, len(z.KeyTags))
			for i, t := range z.KeyTags {
				tags[i] = fmt.Sprint(t)
			}
			fmt.Fprintf(b, ", key %s", strings.Join(tags, ","))
		}
		if len(z.DS) > 0 {
			via := "DS"
			if z.Anchor {
				via = "trust anchor"
			}
			fmt.Fprintf(b, " via %s %s", via, strings.Join(z.DS, ","))
		}
		if z.Reason != "" {
			fmt.Fprintf(b, ": %s", z.Reason)
		}
		b.WriteString("\n")
	}
}
