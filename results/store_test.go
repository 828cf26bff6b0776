package results

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func newStorage(t testing.TB) *certmagic.FileStorage {
	return &certmagic.FileStorage{Path: t.TempDir()}
}

func result(session, check, status string) Result {
	return Result{
		Session: session, Source: "payer", Target: "hub", Method: "POST",
		URI: "/testing/payer/hub/" + session + "/transfers", ForwardedURI: "https://hub.example/transfers",
		Check: check, Status: status,
		Expected: json.RawMessage(`{"mtls":true}`), Actual: json.RawMessage(`{"mtls":false}`),
		Message: "insecure connection",
	}
}

func TestRecordAssignsIDsAndTime(t *testing.T) {
	st := New(newStorage(t), zaptest.NewLogger(t), Options{FlushInterval: time.Hour})
	defer st.Close()
	for i := 1; i <= 3; i++ {
		r := st.Record(result("s1", "Was encrypted?", StatusFail))
		if r.ID != int64(i) {
			t.Fatalf("id = %d, want %d", r.ID, i)
		}
		if r.Time.IsZero() || r.Time.Location() != time.UTC {
			t.Fatalf("time = %v, want set and UTC", r.Time)
		}
	}
	if r := st.Record(result("other", "x", StatusPass)); r.ID != 1 {
		t.Fatalf("ids are per session: got %d", r.ID)
	}
	fixed := time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	r := result("s1", "x", StatusPass)
	r.Time = fixed
	if got := st.Record(r); !got.Time.Equal(fixed) || got.Time.Location() != time.UTC {
		t.Fatalf("given time not kept in UTC: %v", got.Time)
	}
	if r := st.Record(result("../etc", "x", StatusPass)); r.ID != 0 {
		t.Fatalf("unsafe session id recorded with id %d", r.ID)
	}
}

func TestJSONShape(t *testing.T) {
	r := result("s1", "Client certificate", StatusFail)
	r.ID = 17
	r.Time = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	r.ClientCert = &ClientCert{Subject: "CN=payer", Serial: "0a1b", Issuer: "CN=ITP Root"}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":17,"time":"2024-05-06T07:08:09.000000Z","session":"s1","source":"payer","target":"hub","method":"POST",` +
		`"uri":"/testing/payer/hub/s1/transfers","forwarded_uri":"https://hub.example/transfers","check":"Client certificate",` +
		`"status":"fail","expected":{"mtls":true},"actual":{"mtls":false},"message":"insecure connection",` +
		`"client_cert":{"subject":"CN=payer","serial":"0a1b","issuer":"CN=ITP Root"}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || !back.Time.Equal(r.Time) || back.ClientCert.Serial != "0a1b" {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	r.ClientCert = nil
	r.Expected = json.RawMessage("not json")
	b, err = json.Marshal(r)
	if err != nil || strings.Contains(string(b), "client_cert") || !strings.Contains(string(b), `"expected":"not json"`) {
		t.Fatalf("got %s, %v", b, err)
	}
}

func TestBoundAndQuery(t *testing.T) {
	st := New(newStorage(t), zaptest.NewLogger(t), Options{PerSession: 5, FlushInterval: time.Hour})
	defer st.Close()
	for i := 0; i < 12; i++ {
		status := StatusPass
		if i%2 == 0 {
			status = StatusFail
		}
		st.Record(result("s1", fmt.Sprintf("c%d", i%3), status))
	}
	all := st.Query("s1", 0, "", "")
	if len(all) != 5 || all[0].ID != 8 || all[4].ID != 12 {
		t.Fatalf("want ids 8..12, got %v", resultIDs(all))
	}
	if got := resultIDs(st.Query("s1", 10, "", "")); fmt.Sprint(got) != "[11 12]" {
		t.Fatalf("since 10: %v", got)
	}
	if got := resultIDs(st.Query("s1", 0, StatusFail, "")); fmt.Sprint(got) != "[9 11]" {
		t.Fatalf("status fail: %v", got)
	}
	if got := resultIDs(st.Query("s1", 0, "", "c2")); fmt.Sprint(got) != "[9 12]" {
		t.Fatalf("check c2: %v", got)
	}
	if got := st.Query("nothing", 0, "", ""); got == nil || len(got) != 0 {
		t.Fatalf("unknown session: %#v", got)
	}
}

func resultIDs(rs []Result) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func TestPersistAcrossRestart(t *testing.T) {
	storage := newStorage(t)
	st := New(storage, zaptest.NewLogger(t), Options{PerSession: 3, FlushInterval: 20 * time.Millisecond})
	for i := 0; i < 4; i++ {
		st.Record(result("s1", "c", StatusPass))
	}
	st.Record(result("s2", "c", StatusFail))
	// The background flusher writes without an explicit Flush.
	deadline := time.Now().Add(5 * time.Second)
	for !storage.Exists(context.Background(), Key("s2")) {
		if time.Now().After(deadline) {
			t.Fatal("background flush did not happen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st.Record(result("s1", "c", StatusPass)) // id 5, written by Close
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil { // idempotent
		t.Fatal(err)
	}

	// A corrupt file is skipped, not fatal.
	if err := storage.Store(context.Background(), Key("bad"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	st2 := New(storage, zaptest.NewLogger(t), Options{PerSession: 3, FlushInterval: time.Hour})
	defer st2.Close()
	if got := resultIDs(st2.Query("s1", 0, "", "")); fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("after restart: %v", got)
	}
	if r := st2.Record(result("s1", "c", StatusPass)); r.ID != 6 {
		t.Fatalf("id after restart = %d, want 6", r.ID)
	}
	if r := st2.Record(result("bad", "c", StatusPass)); r.ID != 1 {
		t.Fatalf("id for corrupt session = %d, want 1", r.ID)
	}
}

func TestQueryReadsStorageOfOtherInstance(t *testing.T) {
	storage := newStorage(t)
	a := New(storage, zaptest.NewLogger(t), Options{FlushInterval: time.Hour})
	b := New(storage, zaptest.NewLogger(t), Options{FlushInterval: time.Hour})
	defer a.Close()
	defer b.Close()
	a.Record(result("s1", "c", StatusPass))
	if err := a.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := resultIDs(b.Query("s1", 0, "", "")); fmt.Sprint(got) != "[1]" {
		t.Fatalf("b sees %v", got)
	}
}

func TestDelete(t *testing.T) {
	storage := newStorage(t)
	st := New(storage, zaptest.NewLogger(t), Options{FlushInterval: time.Hour})
	defer st.Close()
	st.Record(result("s1", "c", StatusPass))
	st.Record(result("s1", "c", StatusPass))
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	if storage.Exists(context.Background(), Key("s1")) {
		t.Fatal("stored results remain after Delete")
	}
	if got := st.Query("s1", 0, "", ""); len(got) != 0 {
		t.Fatalf("results remain: %v", resultIDs(got))
	}
	if r := st.Record(result("s1", "c", StatusPass)); r.ID != 1 {
		t.Fatalf("id after delete = %d", r.ID)
	}
	if err := st.Delete(context.Background(), "never"); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRecordFlushDelete(t *testing.T) {
	st := New(newStorage(t), zaptest.NewLogger(t), Options{PerSession: 50, FlushInterval: 5 * time.Millisecond})
	defer st.Close()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			session := fmt.Sprintf("s%d", g%2)
			var last int64
			for i := 0; i < 2000; i++ {
				r := st.Record(result(session, "c", StatusPass))
				// ids only restart after a Delete, which only hits s1.
				if session == "s0" && r.ID <= last {
					t.Errorf("id went back from %d to %d", last, r.ID)
				}
				last = r.ID
				if i%100 == 0 {
					st.Query(session, 0, StatusPass, "")
				}
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			_ = st.Delete(context.Background(), "s1")
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := st.Query("s0", 0, "", "")
	if len(got) != 50 || got[len(got)-1].ID != 4000 {
		t.Fatalf("s0: %d results, last %d", len(got), got[len(got)-1].ID)
	}
}

// TestBurstMemoryBounded records a million results across a few sessions and
// checks that the heap stays within a generous multiple of the bound
// sessions × PerSession.
func TestBurstMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	const sessions, perSession, total = 4, 1000, 1_000_000
	storage := newStorage(t)
	st := New(storage, zap.NewNop(), Options{PerSession: perSession, FlushInterval: 50 * time.Millisecond})
	defer st.Close()

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var peak uint64
	var wg sync.WaitGroup
	for g := 0; g < sessions; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			session := fmt.Sprintf("burst%d", g)
			for i := 0; i < total/sessions; i++ {
				st.Record(result(session, "Was encrypted?", StatusFail))
			}
		}(g)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak {
				peak = m.HeapAlloc
			}
		}
	}
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := heap()
	// One result is well under 1 KB; allow 10 KB each for the retained
	// results plus garbage in flight.
	const bound = sessions * perSession * 10 << 10
	t.Logf("heap before %d KB, after %d KB, sampled peak %d KB, bound %d KB", before>>10, after>>10, peak>>10, bound>>10)
	if after > before+bound {
		t.Fatalf("heap grew by %d KB, more than %d KB", (after-before)>>10, bound>>10)
	}
	for g := 0; g < sessions; g++ {
		got := st.Query(fmt.Sprintf("burst%d", g), 0, "", "")
		if len(got) != perSession || got[len(got)-1].ID != total/sessions {
			t.Fatalf("session %d: %d results, last id %d", g, len(got), got[len(got)-1].ID)
		}
	}
	// What is stored is bounded too.
	fi, err := os.Stat(filepath.Join(storage.Path, filepath.FromSlash(Key("burst0"))))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > perSession*1024 {
		t.Fatalf("stored list is %d bytes", fi.Size())
	}
}

func BenchmarkRecord(b *testing.B) {
	st := New(newStorage(b), zap.NewNop(), Options{FlushInterval: 100 * time.Millisecond})
	defer st.Close()
	r := result("bench", "Was encrypted?", StatusPass)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.Record(r)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	st := New(newStorage(b), zap.NewNop(), Options{FlushInterval: 100 * time.Millisecond})
	defer st.Close()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := result("bench", "Was encrypted?", StatusPass)
		for pb.Next() {
			st.Record(r)
		}
	})
}
