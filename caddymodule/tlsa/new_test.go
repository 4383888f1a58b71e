package tlsa

import (
	"encoding/hex"
	"testing"
)

// TestNewRecord: RFC 6698 §2.1 selectors and matching types.
func TestNewRecord(t *testing.T) {
	cert := newTestPKI(t).leaf
	digest := hex.EncodeToString(assoc(cert, SPKI, SHA256))
	r, err := NewRecord(DANEEE, SPKI, SHA256, cert)
	if err != nil || r.String() != "3 1 1 "+digest {
		t.Errorf("3 1 1: %v %v", r, err)
	}
	r, err = NewRecord(DANETA, Cert, Full, cert)
	if err != nil || len(r.Data) != len(cert.Raw) {
		t.Errorf("2 0 0: %v", err)
	}
	r, err = NewRecord(DANEEE, SPKI, SHA512, cert)
	if err != nil || len(r.Data) != 64 {
		t.Errorf("3 1 2: %v", err)
	}
	if _, err := NewRecord(4, SPKI, SHA256, cert); err == nil {
		t.Error("usage 4 accepted")
	}
	if _, err := NewRecord(DANEEE, 2, SHA256, cert); err == nil {
		t.Error("selector 2 accepted")
	}
	if _, err := NewKeyRecord(DANEEE, 3, cert.RawSubjectPublicKeyInfo); err == nil {
		t.Error("matching type 3 accepted")
	}
}
