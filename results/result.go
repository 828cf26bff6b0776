package results

import (
	"encoding/json"
	"time"
)

// Status values of a Result.
const (
	// StatusPass is the status of a check that passed.
	StatusPass = "pass"
	// StatusFail is the status of a check that failed.
	StatusFail = "fail"
)

// TimeFormat is the layout of Result.Time on the wire: RFC 3339 in UTC,
// always with a microsecond fraction.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Result is one check outcome in a session's results (DESIGN.md §6).
type Result struct {
	// ID increases within a session, also across restarts. Record assigns it.
	ID int64 `json:"id"`
	// Time is when the check happened; Record sets it to now when zero. It
	// is encoded as RFC 3339 in UTC with a fraction (see TimeFormat).
	Time time.Time `json:"time"`
	// Session is the id of the session the check belongs to.
	Session string `json:"session"`
	// Source is the slug of the sending component.
	Source string `json:"source"`
	// Target is the slug of the receiving component.
	Target string `json:"target"`
	// Method is the HTTP method of the request.
	Method string `json:"method"`
	// URI is the request URI as received by the platform.
	URI string `json:"uri"`
	// ForwardedURI is the URI the request was forwarded to, if any.
	ForwardedURI string `json:"forwarded_uri"`
	// Check names the check, e.g. "Was encrypted?" or "Client certificate".
	Check string `json:"check"`
	// Status is StatusPass or StatusFail.
	Status string `json:"status"`
	// Expected is what the check expected, as JSON. Record takes ownership
	// of the slice: the caller must not change it afterwards.
	Expected json.RawMessage `json:"expected,omitempty"`
	// Actual is what the check found, as JSON. Record takes ownership of the
	// slice: the caller must not change it afterwards.
	Actual json.RawMessage `json:"actual,omitempty"`
	// Message explains the outcome in words.
	Message string `json:"message"`
	// ClientCert identifies the client certificate of the request, when
	// there was one.
	ClientCert *ClientCert `json:"client_cert,omitempty"`
}

// ClientCert identifies the client certificate a request was sent with.
type ClientCert struct {
	// Subject is the certificate's subject, as a distinguished name string.
	Subject string `json:"subject"`
	// Serial is the certificate's serial number in hexadecimal.
	Serial string `json:"serial"`
	// Issuer is the certificate issuer's distinguished name string.
	Issuer string `json:"issuer"`
}

// wireResult fixes the order of the JSON fields and the time format.
type wireResult struct {
	ID           int64           `json:"id"`
	Time         string          `json:"time"`
	Session      string          `json:"session"`
	Source       string          `json:"source"`
	Target       string          `json:"target"`
	Method       string          `json:"method"`
	URI          string          `json:"uri"`
	ForwardedURI string          `json:"forwarded_uri"`
	Check        string          `json:"check"`
	Status       string          `json:"status"`
	Expected     json.RawMessage `json:"expected,omitempty"`
	Actual       json.RawMessage `json:"actual,omitempty"`
	Message      string          `json:"message"`
	ClientCert   *ClientCert     `json:"client_cert,omitempty"`
}

// MarshalJSON encodes r with its time in RFC 3339, UTC, with a fraction.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireResult{
		ID:           r.ID,
		Time:         r.Time.UTC().Format(TimeFormat),
		Session:      r.Session,
		Source:       r.Source,
		Target:       r.Target,
		Method:       r.Method,
		URI:          r.URI,
		ForwardedURI: r.ForwardedURI,
		Check:        r.Check,
		Status:       r.Status,
		Expected:     validRaw(r.Expected),
		Actual:       validRaw(r.Actual),
		Message:      r.Message,
		ClientCert:   r.ClientCert,
	})
}

// validRaw keeps a RawMessage that is valid JSON and turns anything else
// into a JSON string, so that one bad value cannot make a whole list
// unencodable.
func validRaw(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || json.Valid(m) {
		return m
	}
	b, _ := json.Marshal(string(m))
	return b
}
