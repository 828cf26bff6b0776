package jws

import (
	"bytes"
	"testing"
)

func benchBody() []byte {
	return bytes.Repeat([]byte(`{"k":"0123456789abcdef"},`), 1024/25+1)[:1024]
}

// BenchmarkVerify verifies a detached signature over a 1 KiB body.
func BenchmarkVerify(b *testing.B) {
	body := benchBody()
	for _, alg := range Algorithms() {
		b.Run(alg, func(b *testing.B) {
			cfg := keyConfig(alg, FormatDetached)
			s, _ := NewSigner(cfg)
			value, _, err := s.Sign(Message{Body: body})
			if err != nil {
				b.Fatal(err)
			}
			cfg.PrivateKey = nil
			v := mustVerifier(b, cfg)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(Message{HeaderValue: value, Body: body}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSign signs a 1 KiB body in the detached format.
func BenchmarkSign(b *testing.B) {
	body := benchBody()
	for _, alg := range Algorithms() {
		b.Run(alg, func(b *testing.B) {
			s, err := NewSigner(keyConfig(alg, FormatDetached))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := s.Sign(Message{Body: body}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCanonicalize re-serialises a 1 KiB JSON body.
func BenchmarkCanonicalize(b *testing.B) {
	body := []byte(`[` + string(bytes.TrimSuffix(benchBody()[:1000], []byte(`,`))) + `]`)
	body = append(body[:bytes.LastIndexByte(body, '}')+1], ']')
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(body); err != nil {
			b.Fatal(err)
		}
	}
}
