package sqlite_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/store/storetest"
)

// BenchmarkSagaWrites writes what the coordinator writes for a 2-step saga
// that succeeds (a Create of the transaction and its 2 branches, then one
// Apply of both successes, their events and the final status) from 8
// goroutines per CPU, so that the group-commit writer batches them: the
// store's cost per saga (ns/op, allocs/op) in a SQLite file, and on Linux
// the bytes and write calls it costs (wbytes/op, wcalls/op: the WAL frames
// its commits write, two calls a page, and the checkpoints).
//
// The gids come in three shapes: time-ordered (as coordinator.NewGID
// makes them), one sequence per client (as the loadgen and `dtx bench
// --compare` make them: the gids in flight interleave), and random.
func BenchmarkSagaWrites(b *testing.B) {
	for _, shape := range []struct {
		name string
		gid  func(client, i int64) string
	}{
		{"gids=time", func(_, i int64) string { return fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i) }},
		{"gids=per-client", func(client, i int64) string { return fmt.Sprintf("lg-%d-%d", client, i) }},
		{"gids=random", func(_, _ int64) string { return rand.Text() }},
	} {
		b.Run(shape.name, func(b *testing.B) {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlstore.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var clients atomic.Int64
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			bytes0, calls0, ok := procWrites()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				client := clients.Add(1)
				for i := int64(0); pb.Next(); i++ {
					if err := storetest.WriteSaga(ctx, st, shape.gid(client, i)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
			if bytes1, calls1, ok1 := procWrites(); ok && ok1 {
				b.ReportMetric(float64(bytes1-bytes0)/float64(b.N), "wbytes/op")
				b.ReportMetric(float64(calls1-calls0)/float64(b.N), "wcalls/op")
			}
		})
	}
}

// procWrites returns the bytes this process wrote and its write calls so
// far (/proc/self/io, Linux); ok is false where that cannot be read.
func procWrites() (bytes, calls int64, ok bool) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0, false
	}
	var nb, nc int
	for _, line := range strings.Split(string(data), "\n") {
		if v, found := strings.CutPrefix(line, "wchar: "); found {
			bytes, err = strconv.ParseInt(v, 10, 64)
			nb++
		}
		if v, found := strings.CutPrefix(line, "syscw: "); found {
			calls, err = strconv.ParseInt(v, 10, 64)
			nc++
		}
		if err != nil {
			return 0, 0, false
		}
	}
	return bytes, calls, nb == 1 && nc == 1
}
