package cached_test

import (
	"path/filepath"
	"testing"

	"gatehouse/store"
	"gatehouse/store/storetest"
)

// BenchmarkView_Embedded and BenchmarkView_Redis are View of one
// session through the cache from 32 goroutines: the store's share of a
// cached /auth/verify, the feed's check included.
func BenchmarkView_Embedded(b *testing.B) {
	benchmarkView(b, wrap(b, openFile(b, filepath.Join(b.TempDir(), "gatehouse.db"))))
}

func BenchmarkView_Redis(b *testing.B) {
	r := storetest.StartRedis(b)
	benchmarkView(b, wrap(b, openRedis(b, r.URL)))
}

func benchmarkView(b *testing.B, s store.Store) {
	setUp(b, s, "erin", "e1", "4000")
	b.SetParallelism(16) // 32 goroutines on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.View(b.Context(), "e1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
