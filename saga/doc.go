// Package saga is the saga protocol: the definition a client submits (Spec)
// and a pure state machine (Next) that, given the durable branch states,
// says which branch operations are due and when the saga is finished.
//
// The machine does no I/O and reads no clock; the coordinator package wraps
// it with the store, the transport, timers and leases. The rules:
//
//   - Forward: a step's action may start once every step it depends on has
//     succeeded (sequential sagas: the previous step). Retriable steps (no
//     compensation) wait for the pivot: every compensatable step succeeded.
//   - Definite failure of an action, a timeout or an abort before the pivot
//     switch the saga to compensating. Every step that ran or may have run is
//     compensated — a step "may have run" once all its dependencies
//     succeeded, because the coordinator records a success before it starts
//     the dependants — in reverse dependency order.
//   - Unknown outcomes never change the machine's state: the driver retries
//     the same operation.
package saga
