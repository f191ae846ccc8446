package coordinator

// Waiting reports how many Wait calls are subscribed to gid (tests).
func (c *Coordinator) Waiting(gid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters[gid])
}
