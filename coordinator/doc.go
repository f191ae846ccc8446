// Package coordinator drives global transactions: it accepts new sagas,
// persists them before acting, performs their branch calls through a
// dtx.Transport, retries unknown outcomes with capped exponential backoff and
// jitter, compensates on definite failure or timeout, and recovers every
// unfinished transaction after a restart.
//
// Work is leased. A coordinator drives a transaction only while it holds its
// lease; it renews all its leases with one statement per tick, every write is
// fenced by the lease (dtx.ErrLeaseLost stops the driver), and a recovery
// loop claims transactions whose lease has expired — those of a crashed
// coordinator, or its own after a restart.
package coordinator
