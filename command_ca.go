package itp

import (
	"archive/zip"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"
)

// itpSignCommand is `caddy itp sign`.
func itpSignCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sign <client.csr> [-o certificates.zip]",
		Short: "Signs a participant CSR: client.crt and RootCA.crt in a zip",
		Long: `
Signs a participant's CSR with the ITP CA through the admin API (POST
/itp/ca/sign; not rate limited, unlike the participant page) and writes the
zip of client.crt and RootCA.crt that participants download. The signing
policy is the participant page's: the same key gets the same certificate
back. "-" reads the CSR from stdin; -o - writes the zip to stdout.`,
		Example: `  $ openssl genrsa -out client.key 2048
  $ openssl req -new -key client.key -out client.csr -subj /CN=payer
  $ caddy itp sign client.csr -o certificates.zip`,
		RunE: run(1, "a CSR file", func(cmd *cobra.Command, args []string) error {
			out, _ := cmd.Flags().GetString("output")
			csr, err := readInput(args[0], "the CSR")
			if err != nil {
				return err
			}
			c, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			data, err := c.do(cmd.Context(), http.MethodPost, "/itp/ca/sign", "application/pkcs10", csr)
			if err != nil {
				return fmt.Errorf("signing %s: %w", args[0], err)
			}
			if err := writeOutput(out, data, 0o644); err != nil {
				return err
			}
			if out != "-" {
				fmt.Fprintf(os.Stderr, "wrote %s: %s\n", out, describeBundle(data))
			}
			return nil
		}),
	}
	cmd.Flags().StringP("output", "o", "certificates.zip", "Where to write the zip (\"-\" for stdout)")
	return cmd
}

// describeBundle says what certificate a zip holds.
func describeBundle(data []byte) string {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "not a zip"
	}
	for _, f := range zr.File {
		if f.Name != "client.crt" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			break
		}
		pemData, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		block, _ := pem.Decode(pemData)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			break
		}
		return fmt.Sprintf("client.crt (%s, serial %x, valid until %s) and RootCA.crt",
			cert.Subject, cert.SerialNumber, cert.NotAfter.UTC().Format("2006-01-02"))
	}
	return "client.crt and RootCA.crt"
}

// itpCSRCommand is `caddy itp csr`.
func itpCSRCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "csr [-o client.csr]",
		Short: "Downloads a CSR for the platform's upstream client key",
		Long: `
Downloads a CSR for the platform's own upstream client key (GET
/itp/upstream/client.csr; the key never leaves the platform), for the
Proxy -> Server leg: sign it with your SUT's CA, e.g.

  openssl x509 -req -days 365 -in client.csr -out client.crt -CA ca.crt -CAkey ca.key -CAcreateserial

and give the resulting client.crt to the session's component. Without -o
the CSR goes to stdout.`,
		RunE: run(0, "", func(cmd *cobra.Command, _ []string) error {
			out, _ := cmd.Flags().GetString("output")
			c, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			data, err := c.do(cmd.Context(), http.MethodGet, "/itp/upstream/client.csr", "", nil)
			if err != nil {
				return fmt.Errorf("getting the platform's CSR: %w", err)
			}
			if err := writeOutput(out, data, 0o644); err != nil {
				return err
			}
			if out != "" && out != "-" {
				fmt.Fprintf(os.Stderr, "wrote %s\n", out)
			}
			return nil
		}),
	}
	cmd.Flags().StringP("output", "o", "", "Where to write the CSR (default stdout)")
	return cmd
}

// itpKeycheckCommand is `caddy itp keycheck`.
func itpKeycheckCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keycheck --private <private.key> --public <public.key>",
		Short: "Checks that a private key and a public key (or certificate) belong together",
		Long: `
Checks that a private key and a public key, or a certificate, form a pair:
for RSA, ECDSA and Ed25519 keys alike, in place of comparing
'openssl rsa -modulus | openssl md5' of both (POST /itp/keys/check).

Exit status: 0 when they match, 1 when they do not (the reason is
printed), 2 on a usage error, an unreadable file or a key that cannot be
parsed, 3 when the admin API cannot be reached or fails.`,
		Example: `  $ caddy itp keycheck --private payer-jws.key --public payer-jws.pub`,
		RunE: run(0, "", func(cmd *cobra.Command, _ []string) error {
			privFile, _ := cmd.Flags().GetString("private")
			pubFile, _ := cmd.Flags().GetString("public")
			if privFile == "" || pubFile == "" {
				return &cliError{exitUsage, "both --private and --public are required"}
			}
			priv, err := readInput(privFile, "the private key")
			if err != nil {
				return err
			}
			pub, err := readInput(pubFile, "the public key")
			if err != nil {
				return err
			}
			c, err := newAdminClient(cmd)
			if err != nil {
				return err
			}
			body, _ := json.Marshal(map[string]string{"private_key": string(priv), "public_key": string(pub)})
			data, err := c.do(cmd.Context(), http.MethodPost, "/itp/keys/check", "application/json", body)
			var se *apiStatusError
			switch {
			case errors.As(err, &se) && se.status == http.StatusBadRequest:
				return &cliError{exitUsage, se.msg}
			case err != nil:
				return &cliError{exitUnavailable, "checking the keys: " + err.Error()}
			}
			var res keyCheckResult
			if err := json.Unmarshal(data, &res); err != nil {
				return &cliError{exitUnavailable, "the admin API answered something that is not a key check: " + err.Error()}
			}
			if !res.Match {
				fmt.Printf("mismatch: %s\n", res.Reason)
				return &cliError{exitFailure, ""}
			}
			fmt.Printf("match: %s key pair\n", res.KeyType)
			return nil
		}),
	}
	cmd.Flags().String("private", "", "The private key, PEM (\"-\" for stdin)")
	cmd.Flags().String("public", "", "The public key or a certificate, PEM")
	return cmd
}
