package itp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/ca"
)

// readCSR reads a participant's CSR from a request: the raw PEM body, or
// the multipart form field `file` (what a browser form or
// `curl -F file=@client.csr` sends). Bodies over ca.MaxCSRBytes are a
// *http.MaxBytesError.
func readCSR(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, ca.MaxCSRBytes+16<<10) // room for multipart framing
	mediaType, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "multipart/form-data" {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		if len(data) > ca.MaxCSRBytes {
			return nil, &http.MaxBytesError{Limit: ca.MaxCSRBytes}
		}
		return data, nil
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, &ca.PolicyError{Msg: `no "file" field in the multipart form: upload client.csr as field "file"`}
		}
		if err != nil {
			return nil, err
		}
		if part.FormName() != "file" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, ca.MaxCSRBytes+1))
		if err != nil {
			return nil, err
		}
		if len(data) > ca.MaxCSRBytes {
			return nil, &http.MaxBytesError{Limit: ca.MaxCSRBytes}
		}
		return data, nil
	}
}

// signedBundle applies the signing policy to a CSR and returns the zip of
// client.crt and RootCA.crt. Errors are *httpError values with the status
// and the message for the participant.
func (a *App) signedBundle(ctx context.Context, csrPEM []byte, who string) ([]byte, error) {
	csr, err := ca.ParseParticipantCSR(csrPEM)
	if err != nil {
		return nil, err // a *ca.PolicyError: statusOf makes it a 400
	}
	rec, reused, err := a.Participants().Sign(ctx, csr)
	if errors.Is(err, ca.ErrRecordCap) {
		return nil, &httpError{status: http.StatusServiceUnavailable, msg: err.Error()}
	}
	if err != nil {
		return nil, err
	}
	if !reused {
		a.logger.Info("issued participant certificate",
			zap.String("action", "issue"),
			zap.String("serial", rec.Serial),
			zap.String("subject", rec.Subject),
			zap.String("public_key_sha256", rec.PublicKeySHA256),
			zap.Time("not_after", rec.NotAfter),
			zap.String("by", who))
	}
	return ca.Bundle([]byte(rec.Certificate), a.Authority().TrustPEM(), rec.NotBefore)
}

// httpError is an error with the HTTP status and message to answer with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// statusOf maps an error to an HTTP status and a message safe to show.
func statusOf(err error) (int, string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, he.msg
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: at most %d bytes are accepted", mbe.Limit)
	}
	var pe *ca.PolicyError
	if errors.As(err, &pe) {
		return http.StatusBadRequest, pe.Msg
	}
	return http.StatusInternalServerError, "internal error: " + err.Error()
}
