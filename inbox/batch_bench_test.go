package inbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// BenchmarkBatcherSQLite applies deliveries from 16 concurrent partitions
// through a Batcher on a SQLite file with one connection (WAL,
// synchronous=FULL), as the events bench does. Besides ns/op it reports
// cpu-µs/op, the process's user+system CPU per delivery, which depends
// less on the disk and on other load than the wall time does:
//
//	go test -run '^$' -bench BatcherSQLite -benchtime 3000x -count 3 ./inbox/
func BenchmarkBatcherSQLite(b *testing.B) {
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(b.TempDir(), "inbox.db"), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	in := inbox.Inbox{Dialect: appdb.SQLite}
	if err := in.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE applied (k TEXT PRIMARY KEY, n INTEGER NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	bt, err := inbox.NewBatcher(inbox.Consumer{Inbox: in, DB: db, Group: "g", Logger: discard,
		Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO applied (k, n) VALUES ($1, 1) ON CONFLICT (k) DO UPDATE SET n = applied.n + 1`, d.Key)
			return err
		}}, 0)
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	cpu0 := processCPU()
	b.ResetTimer()
	b.SetParallelism(8) // 16 handlers on 2 cores, like 16 partitions
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			d := broker.Delivery{Message: broker.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint(i % 64), Topic: "t"}, Attempt: 1}
			if err := bt.Handle(ctx, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is the process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
