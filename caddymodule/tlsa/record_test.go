package tlsa

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Record // compared when wantErr is false
		err  bool
	}{
		{name: "RFC6698_2.2/numeric", in: "3 1 1 ABCDef01",
			want: Record{Usage: DANEEE, Selector: SPKI, MatchingType: SHA256, Data: []byte{0xab, 0xcd, 0xef, 0x01}}},
		{name: "RFC6698_2.2/whitespace_inside_hex", in: "  2 0 1 ab cd\tef\n01  ",
			want: Record{Usage: DANETA, Selector: Cert, MatchingType: SHA256, Data: []byte{0xab, 0xcd, 0xef, 0x01}}},
		{name: "RFC7218_2/acronyms", in: "DANE-EE SPKI SHA2-256 00",
			want: Record{Usage: DANEEE, Selector: SPKI, MatchingType: SHA256, Data: []byte{0}}},
		{name: "RFC7218_2/acronyms_any_case", in: "pkix-ta cert full 0102",
			want: Record{Usage: PKIXTA, Selector: Cert, MatchingType: Full, Data: []byte{1, 2}}},
		{name: "RFC7218_2/acronyms_other", in: "PKIX-EE Cert SHA2-512 ff",
			want: Record{Usage: PKIXEE, Selector: Cert, MatchingType: SHA512, Data: []byte{0xff}}},
		{name: "RFC6698_2.2/unknown_values_parse", in: "255 7 9 00",
			want: Record{Usage: 255, Selector: 7, MatchingType: 9, Data: []byte{0}}},
		{name: "error/too_few_fields", in: "3 1 1", err: true},
		{name: "error/empty", in: "", err: true},
		{name: "error/usage_out_of_range", in: "256 1 1 00", err: true},
		{name: "error/negative", in: "-1 1 1 00", err: true},
		{name: "error/plus_sign", in: "+3 1 1 00", err: true},
		{name: "error/unknown_acronym", in: "DANE-XX 1 1 00", err: true},
		{name: "error/odd_hex", in: "3 1 1 abc", err: true},
		{name: "error/not_hex", in: "3 1 1 zz", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRecord(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseRecord(%q) = %v, want an error", tc.in, r)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRecord(%q): %v", tc.in, err)
			}
			if !r.Equal(tc.want) {
				t.Fatalf("ParseRecord(%q) = %v, want %v", tc.in, r, tc.want)
			}
		})
	}
}

func TestRecordString(t *testing.T) {
	r := Record{Usage: DANEEE, Selector: SPKI, MatchingType: SHA256, Data: []byte{0xAB, 0x01}}
	if got, want := r.String(), "3 1 1 ab01"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, tc := range []struct{ got, want string }{
		{PKIXTA.String(), "PKIX-TA"}, {PKIXEE.String(), "PKIX-EE"},
		{DANETA.String(), "DANE-TA"}, {DANEEE.String(), "DANE-EE"},
		{Usage(9).String(), "Usage(9)"},
		{Cert.String(), "Cert"}, {SPKI.String(), "SPKI"}, {Selector(2).String(), "Selector(2)"},
		{Full.String(), "Full"}, {SHA256.String(), "SHA2-256"}, {SHA512.String(), "SHA2-512"},
		{MatchingType(3).String(), "MatchingType(3)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestUsable(t *testing.T) {
	p := newTestPKI(t)
	tests := []struct {
		name   string
		r      Record
		reason string // substring of the reason; "" = usable
	}{
		{"RFC6698_2.1/3_1_1", Record{3, 1, 1, make([]byte, 32)}, ""},
		{"RFC6698_2.1/3_1_2", Record{3, 1, 2, make([]byte, 64)}, ""},
		{"RFC6698_2.1/3_1_0_any_bytes", Record{3, 1, 0, []byte{1}}, ""},
		{"RFC6698_2.1/2_0_0_certificate", rec(DANETA, Cert, Full, p.inter), ""},
		{"RFC6698_2.1/2_1_0_key", rec(DANETA, SPKI, Full, p.inter), ""},
		{"RFC7671_4.1/unknown_usage", Record{4, 1, 1, make([]byte, 32)}, "unknown certificate usage 4"},
		{"RFC7671_4.1/unknown_selector", Record{3, 2, 1, make([]byte, 32)}, "unknown selector 2"},
		{"RFC7671_4.1/unknown_matching_type", Record{3, 1, 3, make([]byte, 32)}, "unknown matching type 3"},
		{"RFC7671_4.1/sha256_length", Record{3, 1, 1, make([]byte, 64)}, "SHA2-256 digest is 64 bytes, want 32"},
		{"RFC7671_4.1/sha512_length", Record{3, 1, 2, make([]byte, 32)}, "SHA2-512 digest is 32 bytes, want 64"},
		{"RFC7671_4.1/empty", Record{3, 1, 1, nil}, "empty"},
		{"RFC7671_4.1/3_0_0_junk", Record{3, 0, 0, []byte{1, 2, 3}}, "not a DER certificate"},
		{"RFC7671_4.1/2_1_0_junk", Record{2, 1, 0, []byte{1, 2, 3}}, "not a DER SubjectPublicKeyInfo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Usable()
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Usable() = %v, want nil", err)
				}
				return
			}
			var ue *UnusableError
			if !errors.As(err, &ue) {
				t.Fatalf("Usable() = %v, want *UnusableError", err)
			}
			if !strings.Contains(ue.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", ue.Reason, tc.reason)
			}
		})
	}
}

// FuzzParseRecord: ParseRecord never panics, and what it accepts survives
// a round trip through String unchanged.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"3 1 1 0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef",
		"DANE-TA SPKI SHA2-512 00 11",
		"0 0 0 30",
		"255 255 255 ff",
		"3 1 1",
		"3\t1\n1 a b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			return
		}
		out := r.String()
		r2, err := ParseRecord(out)
		if err != nil {
			t.Fatalf("ParseRecord(%q) = %v, but its String %q does not parse: %v", s, r, out, err)
		}
		if !r2.Equal(r) || !bytes.Equal(r2.Data, r.Data) {
			t.Fatalf("round trip of %q: %v != %v", s, r2, r)
		}
		if out != r2.String() {
			t.Fatalf("String not stable: %q != %q", out, r2.String())
		}
		_ = r.Usable() // must not panic either
	})
}
