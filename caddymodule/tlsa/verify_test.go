package tlsa

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Verdicts a table row can expect.
type verdict int

const (
	ok verdict = iota
	wantNoUsable
	wantMismatch
	wantName
	wantChain
	wantPKIX
	wantEmpty
)

func (v verdict) String() string {
	return [...]string{"success", "*NoUsableError", "*MismatchError", "*NameError", "*ChainError", "*PKIXError", "ErrEmptyChain"}[v]
}

type verifyCase struct {
	name    string
	chain   func(p *testPKI) []*x509.Certificate
	records func(p *testPKI) []Record
	opts    func(o *Options) // optional changes to the defaults
	want    verdict
	depth   int   // match depth, for success and *NameError (and *PKIXError/*ChainError when ≥ 0)
	usage   Usage // usage of the matching record, on success
}

func full(p *testPKI) []*x509.Certificate     { return []*x509.Certificate{p.leaf, p.inter, p.root} }
func twoCerts(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.leaf, p.inter} }
func leafOnly(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.leaf} }

func records(rs ...func(p *testPKI) Record) func(p *testPKI) []Record {
	return func(p *testPKI) []Record {
		out := make([]Record, len(rs))
		for i, r := range rs {
			out[i] = r(p)
		}
		return out
	}
}

func raw(u Usage, s Selector, m MatchingType, data []byte) func(*testPKI) Record {
	return func(*testPKI) Record { return Record{Usage: u, Selector: s, MatchingType: m, Data: data} }
}

func of(u Usage, s Selector, m MatchingType, pick func(p *testPKI) *x509.Certificate) func(*testPKI) Record {
	return func(p *testPKI) Record { return rec(u, s, m, pick(p)) }
}

// flipped is like of, with the data altered: a digest gets its last byte
// changed (OpenSSL cases 7-10 alter the last hex digit the same way). Full
// data would no longer parse, or (for a certificate's signature bytes)
// still name the same key, so it becomes that of badInter instead: a
// certificate with the intermediate's name that issued nothing presented.
func flipped(u Usage, s Selector, m MatchingType, pick func(p *testPKI) *x509.Certificate) func(*testPKI) Record {
	return func(p *testPKI) Record {
		if m == Full {
			return rec(u, s, m, p.badInter)
		}
		r := rec(u, s, m, pick(p))
		r.Data[len(r.Data)-1] ^= 1
		return r
	}
}

func leaf(p *testPKI) *x509.Certificate  { return p.leaf }
func inter(p *testPKI) *x509.Certificate { return p.inter }
func root(p *testPKI) *x509.Certificate  { return p.root }

func verifyCases() []verifyCase {
	var cs []verifyCase
	// RFC 6698 §2.1: every usage × selector × matching type matches the
	// certificate it names. EE usages name the leaf (depth 0); TA usages
	// name the intermediate (depth 1).
	for _, u := range []Usage{PKIXTA, PKIXEE, DANETA, DANEEE} {
		for _, s := range []Selector{Cert, SPKI} {
			for _, m := range []MatchingType{Full, SHA256, SHA512} {
				pick, depth := inter, 1
				if u == PKIXEE || u == DANEEE {
					pick, depth = leaf, 0
				}
				cs = append(cs, verifyCase{
					name:    fmt.Sprintf("RFC6698_2.1/%d_%d_%d_%s_%s_%s", u, s, m, u, s, m),
					chain:   full,
					records: records(of(u, s, m, pick)),
					want:    ok, depth: depth, usage: u,
				}, verifyCase{
					name:    fmt.Sprintf("RFC6698_2.1/%d_%d_%d_altered_data_mismatch", u, s, m),
					chain:   full,
					records: records(flipped(u, s, m, pick)),
					want:    wantMismatch,
				})
			}
		}
	}
	cs = append(cs, []verifyCase{
		// RFC 7671 §4.1 / RFC 6698 §4.1: unusable records are ignored.
		{name: "RFC7671_4.1/unknown_usage_unusable", chain: full,
			records: records(raw(4, SPKI, SHA256, make([]byte, 32))), want: wantNoUsable},
		{name: "RFC7671_4.1/unknown_selector_unusable", chain: full,
			records: records(raw(DANEEE, 2, SHA256, make([]byte, 32))), want: wantNoUsable},
		{name: "RFC7671_4.1/unknown_matching_type_unusable", chain: full,
			records: records(raw(DANEEE, SPKI, 3, make([]byte, 32))), want: wantNoUsable},
		{name: "RFC7671_4.1/sha256_wrong_length_unusable", chain: full,
			records: records(raw(DANEEE, SPKI, SHA256, make([]byte, 31))), want: wantNoUsable},
		{name: "RFC7671_4.1/sha512_wrong_length_unusable", chain: full,
			records: records(raw(DANEEE, SPKI, SHA512, make([]byte, 32))), want: wantNoUsable},
		{name: "RFC7671_4.1/empty_data_unusable", chain: full,
			records: records(raw(DANEEE, SPKI, Full, nil)), want: wantNoUsable},
		{name: "RFC7671_4.1/2_0_0_not_a_certificate_unusable", chain: full,
			records: records(raw(DANETA, Cert, Full, []byte{0x30, 0x03, 1, 2, 3})), want: wantNoUsable},
		{name: "RFC7671_4.1/no_records", chain: full, records: records(), want: wantNoUsable},
		{name: "RFC7671_4.1/unusable_ignored_next_to_usable", chain: full,
			records: records(raw(7, SPKI, SHA256, make([]byte, 32)), of(DANEEE, SPKI, SHA256, leaf)),
			want:    ok, depth: 0, usage: DANEEE},

		// RFC 7671 §9: digest agility per usage and selector.
		{name: "RFC7671_9/sha512_present_hides_sha256", chain: full,
			records: records(flipped(DANEEE, SPKI, SHA512, leaf), of(DANEEE, SPKI, SHA256, leaf)),
			want:    wantMismatch},
		{name: "RFC7671_9/preference_reversed_uses_sha256", chain: full,
			records: records(flipped(DANEEE, SPKI, SHA512, leaf), of(DANEEE, SPKI, SHA256, leaf)),
			opts: func(o *Options) {
				o.DigestPreference = func(m MatchingType) int { return map[MatchingType]int{SHA256: 2, SHA512: 1}[m] }
			},
			want: ok, depth: 0, usage: DANEEE},
		{name: "RFC7671_9/preference_disables_sha512", chain: full,
			records: records(of(DANEEE, SPKI, SHA512, leaf)),
			opts: func(o *Options) {
				o.DigestPreference = func(m MatchingType) int { return map[MatchingType]int{SHA256: 1}[m] }
			},
			want: wantNoUsable},
		{name: "RFC7671_9/full_always_used", chain: full,
			records: records(flipped(DANEEE, SPKI, SHA512, leaf), of(DANEEE, SPKI, Full, leaf)),
			want:    ok, depth: 0, usage: DANEEE},
		{name: "RFC7671_9/per_selector", chain: full,
			records: records(flipped(DANEEE, SPKI, SHA512, leaf), of(DANEEE, Cert, SHA256, leaf)),
			want:    ok, depth: 0, usage: DANEEE},
		{name: "RFC7671_9/per_usage", chain: full,
			records: records(flipped(DANEEE, SPKI, SHA512, leaf), of(DANETA, SPKI, SHA256, inter)),
			want:    ok, depth: 1, usage: DANETA},

		// RFC 7671 §5.1: DANE-EE ignores dates, issuer and (by default) names.
		{name: "RFC7671_5.1/DANE-EE_expired_leaf_passes",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.expiredLeaf} },
			records: records(of(DANEEE, SPKI, SHA256, func(p *testPKI) *x509.Certificate { return p.expiredLeaf })),
			want:    ok, depth: 0, usage: DANEEE},
		{name: "RFC7671_5.1/DANE-EE_ignores_names", chain: full,
			records: records(of(DANEEE, SPKI, SHA256, leaf)),
			opts:    func(o *Options) { o.Names = []string{"elsewhere.example"} },
			want:    ok, depth: 0, usage: DANEEE},
		{name: "RFC7671_5.1/DANE-EE_CheckEENames_mismatch", chain: full,
			records: records(of(DANEEE, SPKI, SHA256, leaf)),
			opts:    func(o *Options) { o.Names = []string{"elsewhere.example"}; o.CheckEENames = true },
			want:    wantName, depth: 0},
		{name: "RFC7671_5.1/DANE-EE_CheckEENames_any_name_matches", chain: full,
			records: records(of(DANEEE, SPKI, SHA256, leaf)),
			opts:    func(o *Options) { o.Names = []string{"elsewhere.example", testName + "."}; o.CheckEENames = true },
			want:    ok, depth: 0, usage: DANEEE},
		{name: "RFC7671_5.1/DANE-EE_unrelated_leaf_mismatch", chain: full,
			records: records(of(DANEEE, SPKI, SHA256, inter)), want: wantMismatch},

		// RFC 7671 §5.2: DANE-TA.
		{name: "RFC7671_5.2.2/DANE-TA_name_mismatch",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.otherLeaf, p.inter} },
			records: records(of(DANETA, SPKI, SHA256, inter)), want: wantName, depth: 1},
		{name: "RFC7671_5.2.2/DANE-TA_no_reference_names", chain: full,
			records: records(of(DANETA, SPKI, SHA256, inter)),
			opts:    func(o *Options) { o.Names = nil }, want: wantName, depth: 1},
		{name: "RFC7671_5.2/DANE-TA_wrong_signature_in_path",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.leaf, p.badInter, p.root} },
			records: records(of(DANETA, SPKI, SHA256, root)), want: wantChain},
		{name: "RFC7671_5.2/DANE-TA_matched_issuer_does_not_sign_leaf",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.leaf, p.badInter} },
			records: records(of(DANETA, Cert, SHA256, func(p *testPKI) *x509.Certificate { return p.badInter })),
			want:    wantChain},
		{name: "RFC7671_5.2/DANE-TA_expired_intermediate",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.leaf, p.expiredInter, p.root} },
			records: records(of(DANETA, SPKI, SHA256, root)), want: wantChain},
		{name: "RFC7671_5.2/DANE-TA_expired_leaf",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.expiredLeaf, p.inter} },
			records: records(of(DANETA, SPKI, SHA256, inter)), want: wantChain},
		{name: "RFC7671_5.2/DANE-TA_does_not_match_leaf", chain: full,
			records: records(of(DANETA, SPKI, SHA256, leaf)), want: wantMismatch},
		{name: "RFC7671_5.2/DANE-TA_root_depth_2", chain: full,
			records: records(of(DANETA, SPKI, SHA256, root)), want: ok, depth: 2, usage: DANETA},
		{name: "RFC7671_5.2/DANE-TA_lowest_depth_wins", chain: full,
			records: records(of(DANETA, SPKI, SHA256, root), of(DANETA, Cert, SHA256, inter)),
			want:    ok, depth: 1, usage: DANETA},
		{name: "RFC8446_4.4.2/DANE-TA_unordered_chain",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.leaf, p.root, p.inter} },
			records: records(of(DANETA, SPKI, SHA256, root)), want: ok, depth: 2, usage: DANETA},
		{name: "RFC7671_5.2.2/2_0_0_root_not_presented", chain: twoCerts,
			records: records(of(DANETA, Cert, Full, root)), want: ok, depth: 2, usage: DANETA},
		{name: "RFC7671_5.2.2/2_0_0_intermediate_not_presented", chain: leafOnly,
			records: records(of(DANETA, Cert, Full, inter)), want: ok, depth: 1, usage: DANETA},
		{name: "RFC7671_5.2.2/2_1_0_root_key_not_presented", chain: twoCerts,
			records: records(of(DANETA, SPKI, Full, root)), want: ok, depth: 1, usage: DANETA},
		{name: "RFC7671_5.2.2/2_1_0_intermediate_key_not_presented", chain: leafOnly,
			records: records(of(DANETA, SPKI, Full, inter)), want: ok, depth: 0, usage: DANETA},
		{name: "RFC7671_5.2.2/2_1_0_unrelated_key", chain: leafOnly,
			records: records(of(DANETA, SPKI, Full, root)), want: wantMismatch},
		{name: "RFC7671_5.2.2/2_0_0_expired_anchor_from_DNS", chain: leafOnly,
			records: records(of(DANETA, Cert, Full, func(p *testPKI) *x509.Certificate { return p.expiredInter })),
			want:    wantChain},

		// RFC 6698 §2.1.1: PKIX-TA and PKIX-EE need PKIX validation too.
		{name: "RFC6698_2.1.1/PKIX-EE_untrusted_root", chain: full,
			records: records(of(PKIXEE, SPKI, SHA256, leaf)),
			opts:    func(o *Options) { o.Roots = x509.NewCertPool() }, want: wantPKIX, depth: 0},
		{name: "RFC6698_2.1.1/PKIX-TA_root_only_in_pool", chain: twoCerts,
			records: records(of(PKIXTA, SPKI, SHA256, root)), want: ok, depth: 2, usage: PKIXTA},
		{name: "RFC6698_2.1.1/PKIX-TA_missing_intermediate_from_0_0_0", chain: leafOnly,
			records: records(of(PKIXEE, SPKI, SHA256, leaf), of(PKIXTA, Cert, Full, inter)),
			want:    ok, depth: 0, usage: PKIXEE},
		{name: "RFC6698_2.1.1/PKIX-EE_missing_intermediate", chain: leafOnly,
			records: records(of(PKIXEE, SPKI, SHA256, leaf)), want: wantPKIX, depth: 0},
		{name: "RFC6698_2.1.1/PKIX-EE_expired_leaf",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.expiredLeaf, p.inter} },
			records: records(of(PKIXEE, SPKI, SHA256, func(p *testPKI) *x509.Certificate { return p.expiredLeaf })),
			want:    wantPKIX, depth: 0},
		{name: "RFC6698_2.1.1/PKIX-EE_name_mismatch",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.otherLeaf, p.inter} },
			records: records(of(PKIXEE, SPKI, SHA256, func(p *testPKI) *x509.Certificate { return p.otherLeaf })),
			want:    wantName, depth: 0},
		{name: "RFC6698_2.1.1/PKIX-TA_valid_chain_other_CA_mismatch", chain: full,
			records: records(of(PKIXTA, SPKI, SHA256, func(p *testPKI) *x509.Certificate { return p.badInter })),
			want:    wantMismatch},

		// Precedence between usages (OpenSSL danetest.in cases 43-46).
		{name: "precedence/DANE-EE_beats_DANE-TA", chain: full,
			records: records(of(DANETA, SPKI, SHA256, inter), of(DANEEE, SPKI, SHA256, leaf)),
			want:    ok, depth: 0, usage: DANEEE},
		{name: "precedence/DANE-TA_beats_PKIX-EE", chain: full,
			records: records(of(PKIXEE, SPKI, SHA256, leaf), of(DANETA, SPKI, SHA256, root)),
			want:    ok, depth: 2, usage: DANETA},
		{name: "precedence/PKIX-EE_after_DANE-TA_chain_failure",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.leaf, p.inter, p.badInter} },
			records: records(of(DANETA, Cert, SHA256, func(p *testPKI) *x509.Certificate { return p.badInter }), of(PKIXEE, SPKI, SHA256, leaf)),
			want:    ok, depth: 0, usage: PKIXEE},

		// Hostile or degenerate input.
		{name: "input/empty_chain", chain: func(*testPKI) []*x509.Certificate { return nil },
			records: records(of(DANEEE, SPKI, SHA256, leaf)), want: wantEmpty},
		{name: "input/nil_leaf", chain: func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{nil, p.inter} },
			records: records(of(DANEEE, SPKI, SHA256, leaf)), want: wantEmpty},
		{name: "input/nil_in_chain_skipped",
			chain:   func(p *testPKI) []*x509.Certificate { return []*x509.Certificate{p.leaf, nil, p.inter} },
			records: records(of(DANETA, SPKI, SHA256, inter)), want: ok, depth: 1, usage: DANETA},
		{name: "input/hostile_long_chain_bounded",
			chain: func(p *testPKI) []*x509.Certificate {
				c := []*x509.Certificate{p.leaf}
				for range 1000 {
					c = append(c, p.badInter)
				}
				return append(c, p.inter)
			},
			records: records(of(DANETA, SPKI, SHA256, inter)), want: wantMismatch},
		{name: "input/huge_data_unusable", chain: full,
			records: records(raw(DANEEE, Cert, Full, make([]byte, 1<<17))), want: wantNoUsable},
	}...)
	return cs
}

func TestVerify(t *testing.T) {
	p := newTestPKI(t)
	for _, tc := range verifyCases() {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{
				Chain:   tc.chain(p),
				Records: tc.records(p),
				Names:   []string{testName},
				Roots:   p.roots,
				Time:    testTime,
			}
			if tc.opts != nil {
				tc.opts(&o)
			}
			m, err := Verify(o)
			checkVerdict(t, tc, m, err)
		})
	}
}

func checkVerdict(t *testing.T, tc verifyCase, m *Match, err error) {
	t.Helper()
	if err != nil {
		t.Logf("refusal: %v", err)
		if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("error has an empty message")
		}
	}
	var (
		nu *NoUsableError
		mm *MismatchError
		ne *NameError
		ce *ChainError
		pe *PKIXError
	)
	switch tc.want {
	case ok:
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		if m.Depth != tc.depth || m.Record.Usage != tc.usage {
			t.Errorf("match %s at depth %d, want usage %s at depth %d", m.Record.short(), m.Depth, tc.usage, tc.depth)
		}
		if len(m.Chain) == 0 {
			t.Errorf("match carries no chain")
		}
	case wantNoUsable:
		if !errors.As(err, &nu) {
			t.Fatalf("want %s, got %v", tc.want, err)
		}
	case wantMismatch:
		if !errors.As(err, &mm) {
			t.Fatalf("want %s, got %v", tc.want, err)
		}
	case wantName:
		if !errors.As(err, &ne) {
			t.Fatalf("want %s, got %v", tc.want, err)
		}
		if ne.Match == nil || ne.Match.Depth != tc.depth {
			t.Errorf("NameError match %+v, want depth %d", ne.Match, tc.depth)
		}
	case wantChain:
		if !errors.As(err, &ce) {
			t.Fatalf("want %s, got %v", tc.want, err)
		}
	case wantPKIX:
		if !errors.As(err, &pe) {
			t.Fatalf("want %s, got %v", tc.want, err)
		}
		if pe.Match == nil || pe.Match.Depth != tc.depth {
			t.Errorf("PKIXError match %+v, want depth %d", pe.Match, tc.depth)
		}
		var x509Err x509.UnknownAuthorityError
		var inv x509.CertificateInvalidError
		if !errors.As(err, &x509Err) && !errors.As(err, &inv) {
			t.Errorf("PKIXError does not unwrap to the x509 error: %#v", pe.Err)
		}
	case wantEmpty:
		if !errors.Is(err, ErrEmptyChain) {
			t.Fatalf("want %s, got %v", tc.want, err)
		}
	}
}

// The error messages are read by operators: check they name what failed.
func TestErrorMessages(t *testing.T) {
	p := newTestPKI(t)
	_, err := Verify(Options{Chain: full(p), Time: testTime, Records: []Record{
		{Usage: 4, Selector: 1, MatchingType: 1, Data: make([]byte, 32)},
		{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{0xab, 0x12}},
	}})
	for _, want := range []string{"no usable TLSA: ", "unknown certificate usage 4", "3 1 1 ab12", "SHA2-256 digest is 2 bytes, want 32"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NoUsableError %q does not contain %q", err, want)
		}
	}
	r1 := Record{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}
	r2 := Record{Usage: 2, Selector: 1, MatchingType: 1, Data: append([]byte{0xab, 0x12}, make([]byte, 30)...)}
	_, err = Verify(Options{Chain: full(p), Time: testTime, Records: []Record{r1, r2}})
	for _, want := range []string{"TLSA mismatch: 3 1 1 0000000000000000…; 2 1 1 ab12000000000000…", "CN=" + testName, "CN=Test Root CA"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("MismatchError %q does not contain %q", err, want)
		}
	}
}
