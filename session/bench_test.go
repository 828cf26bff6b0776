package session

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"
)

// registryWith returns a registry holding n minimal sessions and a group
// whose default is the last of them. Sessions are installed as static ones
// so that building 10,000 is fast; lookups do not distinguish them.
func registryWith(b *testing.B, n int) *Registry {
	r, err := New(newStorage(b), zap.NewNop(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	if _, err := r.CreateGroup(context.Background(), Group{ID: "g", DefaultSession: fmt.Sprintf("s%05d", n-1)}); err != nil {
		b.Fatal(err)
	}
	list := make([]Session, n)
	for i := range list {
		list[i] = minimalSession(fmt.Sprintf("s%05d", i))
		list[i].Group = "g"
	}
	if err := r.SetStatic(list); err != nil {
		b.Fatal(err)
	}
	return r
}

func BenchmarkSessionLookup(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			r := registryWith(b, n)
			ids := make([]string, 64)
			for i := range ids {
				ids[i] = fmt.Sprintf("s%05d", (i*7919)%n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, ok := r.Session(ids[i&63]); !ok {
						b.Fatal("missing")
					}
					i++
				}
			})
		})
	}
}

func BenchmarkGroupDefault(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			r := registryWith(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok := r.GroupDefault("g"); !ok {
					b.Fatal("missing")
				}
			}
		})
	}
}

// BenchmarkCreateSession measures one creation against a real FileStorage
// (lock, exists, atomic store, unlock).
func BenchmarkCreateSession(b *testing.B) {
	r, err := New(newStorage(b), zap.NewNop(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.CreateSession(ctx, minimalSession(fmt.Sprintf("b%d", i))); err != nil {
			b.Fatal(err)
		}
	}
}
