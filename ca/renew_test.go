package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func TestRenewKeepsPreviousRootDuringTransition(t *testing.T) {
	ctx := context.Background()
	st := testStorage(t)
	p := newParticipants(t, st)
	old := p.Authority()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := ParseParticipantCSR(makeCSR(t, key, nil))
	oldRec, _, _ := p.Sign(ctx, csr)
	oldCert, _ := DecodeCertPEM([]byte(oldRec.Certificate))

	next, err := Renew(ctx, st, nil, Options{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if next.Root.Equal(old.Root) || KeyTypeOf(next.Root.PublicKey) != KeyTypeOf(old.Root.PublicKey) {
		t.Fatal("renewal did not make a new root of the same key type")
	}
	if got := strings.Count(string(next.TrustPEM()), "BEGIN CERTIFICATE"); got != 2 {
		t.Fatalf("trust bundle holds %d roots, want 2", got)
	}
	// old participant certificates still verify during the transition
	if _, err := oldCert.Verify(x509.VerifyOptions{Roots: next.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("old certificate refused during the transition: %v", err)
	}
	// the same key gets a certificate from the new root
	p.SetAuthority(next)
	newRec, reused, err := p.Sign(ctx, csr)
	if err != nil || reused {
		t.Fatal("certificate from the old root reused after renewal", err)
	}
	newCert, _ := DecodeCertPEM([]byte(newRec.Certificate))
	if newCert.CheckSignatureFrom(next.Root) != nil {
		t.Fatal("new certificate not from the new root")
	}
	// server certificates come from the old root while the transition
	// lasts more than half their lifetime, then from the new one
	skey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"localhost"}}, skey)
	scsr, _ := x509.ParseCertificateRequest(der)
	pemBytes, _ := next.IssueServer(scsr, 10*time.Minute)
	srv, _ := DecodeCertPEM(pemBytes)
	if srv.CheckSignatureFrom(old.Root) != nil {
		t.Fatal("server certificate not from the previous root during the transition")
	}
	pemBytes, _ = next.IssueServer(scsr, 4*time.Hour)
	srv, _ = DecodeCertPEM(pemBytes)
	if srv.CheckSignatureFrom(next.Root) != nil {
		t.Fatal("server certificate outliving the transition not from the new root")
	}
	// a sync tick with nothing changed keeps the loaded authority
	if same, changed, err := next.Reload(ctx, st); err != nil || changed || same != next {
		t.Fatal("unchanged storage reloaded as a change", err)
	}
	// a restart loads the same state
	again, err := LoadOrCreate(ctx, st, nil, Options{})
	if err != nil || !again.Root.Equal(next.Root) || len(again.Previous()) != 1 {
		t.Fatal("restart after renewal", err)
	}
}

func TestTransitionEnds(t *testing.T) {
	ctx := context.Background()
	st := testStorage(t)
	p := newParticipants(t, st)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := ParseParticipantCSR(makeCSR(t, key, nil))
	oldRec, _, _ := p.Sign(ctx, csr)
	oldCert, _ := DecodeCertPEM([]byte(oldRec.Certificate))
	next, err := Renew(ctx, st, nil, Options{}, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1600 * time.Millisecond)
	reloaded, changed, err := next.Reload(ctx, st)
	if err != nil || !changed {
		t.Fatal("end of transition not noticed", err)
	}
	if len(reloaded.Previous()) != 0 || strings.Count(string(reloaded.TrustPEM()), "BEGIN CERTIFICATE") != 1 {
		t.Fatal("previous root still trusted after its transition")
	}
	if _, err := oldCert.Verify(x509.VerifyOptions{Roots: reloaded.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("old certificate accepted after the transition")
	}
}
