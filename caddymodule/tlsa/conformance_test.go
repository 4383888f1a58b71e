package tlsa

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-dane/caddy-dane/internal/testenv"
)

// OpenSSL's DANE test vectors (test/danetest.in, test/dane-cross.in), read
// from the shared directory at test time; see its README.md for the format
// and for how OpenSSL's driver (test/danetest.c) runs them, which this test
// reproduces:
//
//   - the base domain is the only reference name, the CA file the only root;
//   - nonamechecks=1 means DANE-EE skips the name check;
//   - digest agility ranks SHA2-256 above SHA2-512;
//   - the expected verify result maps to a verdict class: 0 success,
//     20 *PKIXError, 62 *NameError, 65 *MismatchError;
//   - the match depth is checked for failures too (-1: no match).

// conformanceTime is inside every validity period the vectors rely on
// (the latest notBefore is Cross Root's, 2021-08-30). A fixed time keeps
// the test reproducible; OpenSSL's driver uses the clock.
var conformanceTime = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

type conformanceSuite struct {
	name, file, caFile, domain string
}

var conformanceSuites = []conformanceSuite{
	{"danetest", "danetest.in", "danetest.pem", "example.com"},
	{"dane-cross", "dane-cross.in", "cross-root.pem", "server.example"},
}

type daneCase struct {
	num          int
	line         int
	records      []Record
	chain        []*x509.Certificate
	noNameChecks bool
	wantResult   int
	wantDepth    int
}

func TestOpenSSLConformance(t *testing.T) {
	dir := conformanceDir(t)
	for _, s := range conformanceSuites {
		roots := x509.NewCertPool()
		pemBytes, err := os.ReadFile(filepath.Join(dir, s.caFile))
		if err != nil {
			t.Fatalf("reading CA file: %v", err)
		}
		if !roots.AppendCertsFromPEM(pemBytes) {
			t.Fatalf("%s: no certificate in CA file", s.caFile)
		}
		cases, err := parseDaneCases(filepath.Join(dir, s.file))
		if err != nil {
			t.Fatalf("parsing %s: %v", s.file, err)
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/case_%d", s.name, c.num), func(t *testing.T) {
				runDaneCase(t, c, s.domain, roots)
			})
		}
	}
}

func runDaneCase(t *testing.T, c daneCase, domain string, roots *x509.CertPool) {
	m, err := Verify(Options{
		Chain:        c.chain,
		Records:      c.records,
		Names:        []string{domain},
		Roots:        roots,
		Time:         conformanceTime,
		CheckEENames: !c.noNameChecks,
		// danetest.c: SHA2-512 gets ordinal 1, SHA2-256 ordinal 2.
		DigestPreference: func(mt MatchingType) int {
			switch mt {
			case SHA256:
				return 2
			case SHA512:
				return 1
			}
			return 0
		},
	})
	depth := -1
	var (
		ne *NameError
		pe *PKIXError
		me *MismatchError
	)
	switch c.wantResult {
	case 0:
		if err != nil {
			t.Fatalf("line %d: want success, got %v", c.line, err)
		}
		depth = m.Depth
	case 20:
		if !errors.As(err, &pe) {
			t.Fatalf("line %d: want *PKIXError (20), got %v", c.line, err)
		}
		if pe.Match != nil {
			depth = pe.Match.Depth
		}
	case 62:
		if !errors.As(err, &ne) {
			t.Fatalf("line %d: want *NameError (62), got %v", c.line, err)
		}
		if ne.Match != nil {
			depth = ne.Match.Depth
		}
	case 65:
		if !errors.As(err, &me) {
			t.Fatalf("line %d: want *MismatchError (65), got %v", c.line, err)
		}
	default:
		t.Fatalf("line %d: verify result %d not understood by this test", c.line, c.wantResult)
	}
	if depth != c.wantDepth {
		t.Errorf("line %d: match depth %d, want %d (err: %v)", c.line, depth, c.wantDepth, err)
	}
	if err != nil {
		t.Logf("refusal: %v", err)
	}
}

// conformanceDir finds the OpenSSL vectors: $CADDY_DANE_SHARED, or the
// "shared" directory next to the module root.
func conformanceDir(t *testing.T) string {
	t.Helper()
	shared := os.Getenv("CADDY_DANE_SHARED")
	if shared == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				shared = filepath.Join(d, "..", "shared")
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	dir := filepath.Join(shared, "conformance", "openssl-danetest")
	if _, err := os.Stat(filepath.Join(dir, "danetest.in")); err != nil || shared == "" {
		testenv.Missing(t, fmt.Sprintf("OpenSSL DANE vectors not found under %q (set CADDY_DANE_SHARED)", dir))
	}
	return dir
}

// parseDaneCases reads a danetest.c case file. Between cases, blank and
// "#" lines are skipped. A case is a header of five integers, exactly
// TLSA-count record lines (comments are not skipped there, and extra
// record lines are junk: cases 43-46), then cert-count PEM blocks, any
// text before each BEGIN line being ignored.
func parseDaneCases(path string) ([]daneCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	lineNo := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		lineNo++
		return strings.TrimRight(sc.Text(), " \t\r"), true
	}

	var cases []daneCase
	for {
		line, ok := next()
		if !ok {
			break
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 5 {
			return nil, fmt.Errorf("line %d: want a case header of 5 integers, got %q", lineNo, line)
		}
		var h [5]int
		for i, s := range fields {
			if h[i], err = strconv.Atoi(s); err != nil {
				return nil, fmt.Errorf("line %d: header field %q: %v", lineNo, s, err)
			}
		}
		c := daneCase{num: len(cases) + 1, line: lineNo, noNameChecks: h[2] != 0, wantResult: h[3], wantDepth: h[4]}
		for i := 0; i < h[0]; i++ {
			l, ok := next()
			if !ok {
				return nil, fmt.Errorf("case %d: end of file in TLSA records", c.num)
			}
			r, err := ParseRecord(l)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", lineNo, err)
			}
			c.records = append(c.records, r)
		}
		for i := 0; i < h[1]; i++ {
			var der strings.Builder
			inBlock := false
			for {
				l, ok := next()
				if !ok {
					return nil, fmt.Errorf("case %d: end of file in certificate %d", c.num, i+1)
				}
				if l == "-----BEGIN CERTIFICATE-----" {
					inBlock = true
				}
				if inBlock {
					der.WriteString(l)
					der.WriteByte('\n')
				}
				if l == "-----END CERTIFICATE-----" && inBlock {
					break
				}
			}
			blk, _ := pem.Decode([]byte(der.String()))
			if blk == nil {
				return nil, fmt.Errorf("case %d: certificate %d: bad PEM", c.num, i+1)
			}
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("case %d: certificate %d: %v", c.num, i+1, err)
			}
			c.chain = append(c.chain, cert)
		}
		cases = append(cases, c)
	}
	return cases, sc.Err()
}
