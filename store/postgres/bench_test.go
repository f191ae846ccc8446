package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/store/postgres"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/store/storetest"
)

// BenchmarkSagaWrites writes what the coordinator writes for a 2-step saga
// that succeeds (a Create of the transaction and its 2 branches, then one
// Apply of both successes, their events and the final status) from 8
// goroutines per CPU, so that the group-commit writers batch them: the
// store's cost per saga (ns/op, allocs/op) on a throwaway PostgreSQL.
func BenchmarkSagaWrites(b *testing.B) {
	st, err := postgres.Open(context.Background(), pgtest.DSN(b), sqlstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var n atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := storetest.WriteSaga(ctx, st, fmt.Sprintf("bench-%d", n.Add(1))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
