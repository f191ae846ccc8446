// Package chaos runs the reference shop and its coordinators as separate
// processes under a steady order load, injects crashes and faults for a
// while, lets the system recover, and checks that nothing was lost or
// applied twice: the invariants of the three service databases, every
// order against its transaction, and — with several coordinators sharing a
// store — that no transaction was driven by two coordinators at once.
//
// It is the engine of `dtx chaos`; see the README's "Chaos" section.
package chaos
