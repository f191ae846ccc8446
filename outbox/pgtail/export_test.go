package pgtail

// EnqueueClean queues seqs for cleaning as if their rows had been
// published.
func (r *Relay) EnqueueClean(seqs []int64) { r.enqueueClean(seqs) }
