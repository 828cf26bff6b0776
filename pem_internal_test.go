package itp

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func parseCSRKey(t *testing.T, data []byte) crypto.PublicKey {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("not PEM: %s", data)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return csr.PublicKey
}
