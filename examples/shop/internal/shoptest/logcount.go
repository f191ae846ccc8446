package shoptest

import (
	"context"
	"log/slog"
	"sync"
)

// LogCounter is a slog.Handler that counts records by message and drops
// them: a test waits for something the code only logs (a background
// loop's round) by waiting for its count.
type LogCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// CountingLogger returns a logger whose records are counted by c.
func CountingLogger() (*slog.Logger, *LogCounter) {
	c := &LogCounter{n: map[string]int{}}
	return slog.New(c), c
}

// Count returns how many records with message msg were logged.
func (c *LogCounter) Count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

func (c *LogCounter) Enabled(context.Context, slog.Level) bool { return true }

func (c *LogCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.n[r.Message]++
	c.mu.Unlock()
	return nil
}

func (c *LogCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *LogCounter) WithGroup(string) slog.Handler      { return c }
