package inbox

// Queued exposes the length of a Batcher's queue to the tests.
func Queued(b *Batcher) int { return b.queued() }
