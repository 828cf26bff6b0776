// Command loadgen is the load generator of the caddy-itp benchmark
// (bench/README.md). It uses the standard library only.
//
//	loadgen load     -target stock=URL -target itp=URL [flags]
//	loadgen sessions -admin http://localhost:2999 -template session.json -n 10000
//	loadgen jws      -key jws.key -body-size 1024
//
// load runs every target for -d with -c connections, one target after the
// other, for -rounds rounds (A B A B ...), presenting a client certificate,
// and prints per target and round the throughput, p50/p99 latency, errors and
// non-2xx answers, and the ratio of every target to the first one (per round
// and the median over rounds). With -admin pointing at Caddy's admin
// endpoint, it also reads the proxy's runtime.MemStats (/debug/vars) around
// every run and prints the allocations and allocated bytes per request.
//
// sessions creates sessions through the admin API one after the other and
// prints the time per session of the first and the last thousand, and the
// heap per session (HeapAlloc after a forced GC, before and after).
//
// jws prints a detached RS256 JWS (RFC 7515 appendix F) over the body that
// load sends with the same -body-size.
package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "load":
		err = cmdLoad(os.Args[2:])
	case "sessions":
		err = cmdSessions(os.Args[2:])
	case "jws":
		err = cmdJWS(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen load|sessions|jws [flags] (loadgen load -h for the flags)")
	os.Exit(2)
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// ---- latency histogram ----

// hist is a log-linear histogram of durations in nanoseconds: values below
// 64 have their own bucket, larger ones 32 buckets per power of two (about 3%
// wide), like an HDR histogram with two significant digits.
type hist struct {
	counts [64 * 32]uint64
	n      uint64
}

func bucketOf(v uint64) int {
	if v < 64 {
		return int(v)
	}
	e := bits.Len64(v) - 6 // v>>e is in [32, 64)
	return e*32 + int(v>>uint(e))
}

// bucketValue returns the middle of a bucket.
func bucketValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	e := i/32 - 1
	m := uint64(i%32 + 32)
	return m<<uint(e) + (uint64(1)<<uint(e))/2
}

func (h *hist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	b := bucketOf(uint64(d))
	if b >= len(h.counts) {
		b = len(h.counts) - 1
	}
	h.counts[b]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(bucketValue(i))
		}
	}
	return 0
}

// ---- memstats from Caddy's admin endpoint ----

type memStats struct {
	Mallocs    uint64
	TotalAlloc uint64
	HeapAlloc  uint64
	Sys        uint64
}

func readMemStats(admin string) (memStats, error) {
	var v struct {
		MemStats memStats `json:"memstats"`
	}
	res, err := http.Get(admin + "/debug/vars")
	if err != nil {
		return memStats{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return memStats{}, fmt.Errorf("GET %s/debug/vars: %s", admin, res.Status)
	}
	err = json.NewDecoder(res.Body).Decode(&v)
	return v.MemStats, err
}

// heapAfterGC forces a GC in the proxy (the heap profile's gc=1) and
// returns its HeapAlloc.
func heapAfterGC(admin string) (uint64, error) {
	for range 2 {
		res, err := http.Get(admin + "/debug/pprof/heap?gc=1")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	ms, err := readMemStats(admin)
	return ms.HeapAlloc, err
}

// ---- load ----

type target struct {
	name string
	urls []string
}

type runResult struct {
	reqs, errs, non2xx uint64
	bytes              uint64
	elapsed            time.Duration
	h                  hist
	firstErr           string
	allocsPerReq       float64
	bytesPerReq        float64
	haveMem            bool
}

func (r *runResult) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.reqs) / r.elapsed.Seconds()
}

type loadConfig struct {
	conns   int
	dur     time.Duration
	newConn bool
	method  string
	body    []byte
	headers http.Header
	tls     *tls.Config
	timeout time.Duration
	admin   string
}

func cmdLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	var targets, headers listFlag
	fs.Var(&targets, "target", "name=URL, repeatable; the first is the base of the ratios; {i} in the URL is replaced by a number cycling over -spread values (%05d)")
	fs.Var(&headers, "header", "\"Name: value\" request header, repeatable")
	scenario := fs.String("scenario", "load", "name printed with the results")
	conns := fs.Int("c", 32, "connections (concurrent requests) per target")
	runDur := fs.Duration("d", 5*time.Second, "duration of one target's run in one round")
	rounds := fs.Int("rounds", 3, "rounds: every target runs once per round, in order")
	warmup := fs.Duration("warmup", time.Second, "an unmeasured run of every target before the rounds")
	newConn := fs.Bool("newconn", false, "a new TLS connection (full handshake, no resumption) for every request")
	method := fs.String("method", http.MethodGet, "request method")
	bodySize := fs.Int("body-size", 0, "request body of this many bytes ('x'), sent with a Content-Length")
	certFile := fs.String("cert", "", "client certificate (PEM)")
	keyFile := fs.String("key", "", "client key (PEM)")
	caFile := fs.String("ca", "", "CA that verifies the servers (PEM); default: the system roots")
	spread := fs.Int("spread", 1, "how many values {i} in a target URL cycles over")
	timeout := fs.Duration("timeout", 60*time.Second, "timeout of one request")
	admin := fs.String("admin", "", "Caddy admin endpoint (http://host:port) to read MemStats from: allocations per request")
	fs.Parse(args)
	if len(targets) == 0 {
		return errors.New("load: at least one -target")
	}
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("load: client certificate: %w", err)
		}
		tcfg.Certificates = []tls.Certificate{cert}
	}
	if *caFile != "" {
		pemBytes, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("load: no certificate in %s", *caFile)
		}
		tcfg.RootCAs = pool
	}
	h := http.Header{}
	for _, hv := range headers {
		k, v, ok := strings.Cut(hv, ":")
		if !ok {
			return fmt.Errorf("load: header %q: want \"Name: value\"", hv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	cfg := loadConfig{
		conns: *conns, dur: *runDur, newConn: *newConn, method: *method,
		body: bytes.Repeat([]byte("x"), *bodySize), headers: h, tls: tcfg,
		timeout: *timeout, admin: *admin,
	}
	var ts []target
	for _, t := range targets {
		name, u, ok := strings.Cut(t, "=")
		if !ok {
			return fmt.Errorf("load: target %q: want name=URL", t)
		}
		tg := target{name: name}
		if strings.Contains(u, "{i}") {
			for i := range max(*spread, 1) {
				tg.urls = append(tg.urls, strings.ReplaceAll(u, "{i}", fmt.Sprintf("%05d", i)))
			}
		} else {
			tg.urls = []string{u}
		}
		ts = append(ts, tg)
	}

	mode := "keep-alive"
	if cfg.newConn {
		mode = "new TLS connection per request"
	}
	fmt.Printf("== %s: %s with a %d-byte request body, %s, %d conns, %s per target, %d rounds\n",
		*scenario, cfg.method, len(cfg.body), mode, cfg.conns, cfg.dur, *rounds)
	if *warmup > 0 {
		wc := cfg
		wc.dur, wc.admin = *warmup, ""
		for _, t := range ts {
			runTarget(wc, t)
		}
	}
	all := make([][]*runResult, len(ts)) // [target][round]
	for round := 1; round <= *rounds; round++ {
		for i, t := range ts {
			r := runTarget(cfg, t)
			all[i] = append(all[i], r)
			printRun(round, t.name, r)
		}
		for i := 1; i < len(ts); i++ {
			b, r := all[0][round-1], all[i][round-1]
			fmt.Printf("   round %d  %s/%s  throughput %.3f  p99 %.3f\n", round, ts[i].name, ts[0].name,
				ratio(r.rps(), b.rps()), ratio(float64(r.h.quantile(.99)), float64(b.h.quantile(.99))))
		}
	}
	fmt.Printf("-- %s summary (medians over rounds)\n", *scenario)
	for i, t := range ts {
		var rps, p50, p99, apr, bpr, mbs []float64
		var errs, non2xx uint64
		first := ""
		for _, r := range all[i] {
			rps = append(rps, r.rps())
			p50 = append(p50, float64(r.h.quantile(.5)))
			p99 = append(p99, float64(r.h.quantile(.99)))
			mbs = append(mbs, float64(r.bytes)/r.elapsed.Seconds()/1e6)
			if r.haveMem {
				apr = append(apr, r.allocsPerReq)
				bpr = append(bpr, r.bytesPerReq)
			}
			errs += r.errs
			non2xx += r.non2xx
			if first == "" {
				first = r.firstErr
			}
		}
		line := fmt.Sprintf("   %-12s %9.0f req/s  %8.1f MB/s  p50 %-9s p99 %-9s errors %d  non-2xx %d",
			t.name, median(rps), median(mbs), dur(median(p50)), dur(median(p99)), errs, non2xx)
		if len(apr) > 0 {
			line += fmt.Sprintf("  allocs/req %.0f  bytes/req %.0f", median(apr), median(bpr))
		}
		fmt.Println(line)
		if first != "" {
			fmt.Printf("   %-12s first error: %s\n", "", first)
		}
	}
	for i := 1; i < len(ts); i++ {
		var rr, pr, ar []float64
		for k := range all[0] {
			b, r := all[0][k], all[i][k]
			rr = append(rr, ratio(r.rps(), b.rps()))
			pr = append(pr, ratio(float64(r.h.quantile(.99)), float64(b.h.quantile(.99))))
			if r.haveMem && b.haveMem {
				ar = append(ar, ratio(r.allocsPerReq, b.allocsPerReq))
			}
		}
		line := fmt.Sprintf("RESULT %s %s/%s throughput %.3f p99 %.3f", *scenario, ts[i].name, ts[0].name, median(rr), median(pr))
		if len(ar) > 0 {
			line += fmt.Sprintf(" allocs/req %.3f", median(ar))
		}
		fmt.Println(line)
	}
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func dur(ns float64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0fus", float64(d)/1e3)
	}
}

func printRun(round int, name string, r *runResult) {
	line := fmt.Sprintf("   round %d  %-12s %9.0f req/s  %8.1f MB/s  p50 %-9s p99 %-9s errors %d  non-2xx %d",
		round, name, r.rps(), float64(r.bytes)/r.elapsed.Seconds()/1e6,
		dur(float64(r.h.quantile(.5))), dur(float64(r.h.quantile(.99))), r.errs, r.non2xx)
	if r.haveMem {
		line += fmt.Sprintf("  allocs/req %.0f  bytes/req %.0f", r.allocsPerReq, r.bytesPerReq)
	}
	fmt.Println(line)
}

// runTarget runs cfg.conns workers against t for cfg.dur.
func runTarget(cfg loadConfig, t target) *runResult {
	var before memStats
	haveMem := false
	if cfg.admin != "" {
		var err error
		before, err = readMemStats(cfg.admin)
		haveMem = err == nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		total    runResult
		next     atomic.Uint64
		deadline = time.Now().Add(cfg.dur)
	)
	start := time.Now()
	for range cfg.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := worker(cfg, t, deadline, &next)
			mu.Lock()
			total.reqs += r.reqs
			total.errs += r.errs
			total.non2xx += r.non2xx
			total.bytes += r.bytes
			total.h.merge(&r.h)
			if total.firstErr == "" {
				total.firstErr = r.firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	if haveMem {
		after, err := readMemStats(cfg.admin)
		if err == nil && total.reqs > 0 {
			total.haveMem = true
			total.allocsPerReq = float64(after.Mallocs-before.Mallocs) / float64(total.reqs)
			total.bytesPerReq = float64(after.TotalAlloc-before.TotalAlloc) / float64(total.reqs)
		}
	}
	return &total
}

// worker sends requests one after the other until the deadline, over one
// keep-alive connection (or a new one per request with cfg.newConn).
func worker(cfg loadConfig, t target, deadline time.Time, next *atomic.Uint64) *runResult {
	tr := &http.Transport{
		TLSClientConfig:     cfg.tls.Clone(),
		MaxIdleConnsPerHost: 1,
		DisableKeepAlives:   cfg.newConn,
		DisableCompression:  true,
		// HTTP/1.1, one request per connection at a time, like
		// bombardier and the shared anchors
		ForceAttemptHTTP2: false,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.timeout}
	r := &runResult{}
	var rd bytes.Reader
	for time.Now().Before(deadline) {
		u := t.urls[int(next.Add(1)%uint64(len(t.urls)))]
		var body io.Reader
		if len(cfg.body) > 0 {
			rd.Reset(cfg.body)
			body = &rd
		}
		req, err := http.NewRequest(cfg.method, u, body)
		if err != nil {
			r.errs++
			r.firstErr = err.Error()
			continue
		}
		for k, v := range cfg.headers {
			req.Header[k] = v
		}
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			r.errs++
			if r.firstErr == "" {
				r.firstErr = err.Error()
			}
			continue
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		r.h.add(time.Since(start))
		r.bytes += uint64(n)
		if err != nil {
			r.errs++
			if r.firstErr == "" {
				r.firstErr = "reading the body: " + err.Error()
			}
			continue
		}
		r.reqs++
		if res.StatusCode < 200 || res.StatusCode > 299 {
			r.non2xx++
			if r.firstErr == "" {
				r.firstErr = fmt.Sprintf("status %d from %s", res.StatusCode, u)
			}
		}
	}
	return r
}

// ---- sessions ----

func cmdSessions(args []string) error {
	fs := flag.NewFlagSet("sessions", flag.ExitOnError)
	admin := fs.String("admin", "http://localhost:2999", "Caddy admin endpoint")
	tmpl := fs.String("template", "", "session JSON file; @ID@ is replaced by the session id")
	n := fs.Int("n", 10000, "sessions to create")
	startAt := fs.Int("start", 0, "number of the first session")
	idFormat := fs.String("id", "b%05d", "session id format")
	group := fs.Int("group", 1000, "report the mean time per session of every group of this many")
	pid := fs.Int("pid", 0, "the proxy's process id, to report its VmRSS too")
	fs.Parse(args)
	t, err := os.ReadFile(*tmpl)
	if err != nil {
		return err
	}
	heapBefore, err := heapAfterGC(*admin)
	if err != nil {
		return err
	}
	rssBefore := vmRSS(*pid)
	client := &http.Client{Timeout: time.Minute}
	durs := make([]time.Duration, 0, *n)
	start := time.Now()
	for i := range *n {
		id := fmt.Sprintf(*idFormat, *startAt+i)
		body := bytes.ReplaceAll(t, []byte("@ID@"), []byte(id))
		t0 := time.Now()
		res, err := client.Post(*admin+"/itp/sessions", "application/json", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("creating session %s: %w", id, err)
		}
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		durs = append(durs, time.Since(t0))
		if res.StatusCode != http.StatusCreated {
			return fmt.Errorf("creating session %s: %s: %s", id, res.Status, msg)
		}
	}
	total := time.Since(start)
	heapAfter, err := heapAfterGC(*admin)
	if err != nil {
		return err
	}
	rssAfter := vmRSS(*pid)
	mean := func(d []time.Duration) time.Duration {
		var s time.Duration
		for _, x := range d {
			s += x
		}
		return s / time.Duration(max(len(d), 1))
	}
	fmt.Printf("== sessions: %d created through POST /itp/sessions in %s (%.0f/s)\n", *n, total.Round(time.Millisecond), float64(*n)/total.Seconds())
	var groups []string
	for i := 0; i < len(durs); i += *group {
		groups = append(groups, dur(float64(mean(durs[i:min(i+*group, len(durs))]))))
	}
	fmt.Printf("   mean time per session, per %d: %s\n", *group, strings.Join(groups, " "))
	k := min(*group, len(durs))
	first, last := mean(durs[:k]), mean(durs[len(durs)-k:])
	perSession := (float64(heapAfter) - float64(heapBefore)) / float64(*n)
	fmt.Printf("   heap (after GC) %.1f MB -> %.1f MB: %.0f bytes per session", float64(heapBefore)/1e6, float64(heapAfter)/1e6, perSession)
	if *pid > 0 {
		fmt.Printf("; VmRSS %.1f MB -> %.1f MB", float64(rssBefore)/1e6, float64(rssAfter)/1e6)
	}
	fmt.Println()
	fmt.Printf("RESULT sessions last%d/first%d time-per-session %.3f (%s vs %s) heap-per-session %.0f B\n",
		k, k, ratio(float64(last), float64(first)), dur(float64(last)), dur(float64(first)), perSession)
	return nil
}

// vmRSS returns a process's resident set size in bytes, or 0.
func vmRSS(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb * 1024
		}
	}
	return 0
}

// ---- jws ----

func cmdJWS(args []string) error {
	fs := flag.NewFlagSet("jws", flag.ExitOnError)
	keyFile := fs.String("key", "", "RSA private key (PEM, PKCS #1 or #8)")
	bodySize := fs.Int("body-size", 1024, "the body signed: this many 'x', as load -body-size sends")
	fs.Parse(args)
	pemBytes, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return fmt.Errorf("jws: no PEM block in %s", *keyFile)
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return errors.New("jws: not an RSA key")
		}
		key = rk
	} else if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		return fmt.Errorf("jws: parsing %s: %w", *keyFile, err)
	}
	b64 := base64.RawURLEncoding
	header := b64.EncodeToString([]byte(`{"alg":"RS256"}`))
	input := header + "." + b64.EncodeToString(bytes.Repeat([]byte("x"), *bodySize))
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return err
	}
	fmt.Println(header + ".." + b64.EncodeToString(sig))
	return nil
}
