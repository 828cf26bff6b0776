package ca

import (
	"archive/zip"
	"bytes"
	"fmt"
	"time"
)

// Bundle is the zip a participant downloads: exactly client.crt and
// RootCA.crt. Its timestamps are fixed to the certificate's NotBefore, so
// the same certificate always gives a byte-identical zip.
func Bundle(clientCertPEM, rootPEM []byte, stamp time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"client.crt", clientCertPEM}, {"RootCA.crt", rootPEM}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: stamp.UTC()})
		if err != nil {
			return nil, fmt.Errorf("zipping %s: %w", f.name, err)
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, fmt.Errorf("zipping %s: %w", f.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zipping certificates: %w", err)
	}
	return buf.Bytes(), nil
}
