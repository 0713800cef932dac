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

// BenchmarkView_Cluster is View through the cache on a three-master
// Redis Cluster, whose feed PINGs every master for each round, and
// BenchmarkView_ClusterUncached the same reads without the cache.
func BenchmarkView_Cluster(b *testing.B) {
	c := storetest.StartCluster(b)
	benchmarkViewOf(b, wrap(b, openRedis(b, c.URL)), store.SessionID("erin", "e1"))
}

func BenchmarkView_ClusterUncached(b *testing.B) {
	c := storetest.StartCluster(b)
	s := openRedis(b, c.URL)
	b.Cleanup(func() { s.Close() })
	benchmarkViewOf(b, s, store.SessionID("erin", "e1"))
}

func benchmarkView(b *testing.B, s store.Store) { benchmarkViewOf(b, s, "e1") }

func benchmarkViewOf(b *testing.B, s store.Store, sid string) {
	setUp(b, s, "erin", sid, "4000")
	b.SetParallelism(16) // 32 goroutines on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.View(b.Context(), sid); err != nil {
				b.Fatal(err)
			}
		}
	})
}
