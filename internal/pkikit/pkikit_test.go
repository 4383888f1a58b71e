package pkikit

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChainVerifies(t *testing.T) {
	root, err := NewRoot("root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("inter")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.NewLeaf("svc.example.test", "alt.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.Chain) != 1 || leaf.Chain[0] != inter.Cert {
		t.Fatalf("leaf chain = %v; want [intermediate]", leaf.Chain)
	}
	if got := len(leaf.TLS().Certificate); got != 2 {
		t.Errorf("TLS() presents %d certificates; want 2", got)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inters.AddCert(inter.Cert)
	for _, name := range []string{"svc.example.test", "alt.example.test"} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inters}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	if leaf.Cert.SerialNumber.Cmp(inter.Cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial")
	}
	direct, err := root.NewLeaf("direct.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(direct.Chain) != 0 {
		t.Errorf("leaf of a root has chain %v", direct.Chain)
	}
}

func TestSelfSignedAndDigests(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := SelfSigned(key, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := SelfSigned(key, "b.test")
	if err != nil {
		t.Fatal(err)
	}
	if a.TLSA311() != b.TLSA311() {
		t.Error("same key, different 3 1 1 digests")
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256(spki)
	if want := "3 1 1 " + hex.EncodeToString(sum[:]); a.TLSA311() != want {
		t.Errorf("TLSA311 = %s; want %s", a.TLSA311(), want)
	}
	if err := a.Cert.CheckSignature(a.Cert.SignatureAlgorithm, a.Cert.RawTBSCertificate, a.Cert.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}

	path := filepath.Join(t.TempDir(), "chain.pem")
	if err := WritePEM(path, a.Cert, b.Cert); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("%d certificates in the PEM file; want 2", n)
	}
	kp, err := KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(kp)
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		t.Fatalf("KeyPEM: %q", kp)
	}
	if _, err := x509.ParseECPrivateKey(blk.Bytes); err != nil {
		t.Error(err)
	}
}
