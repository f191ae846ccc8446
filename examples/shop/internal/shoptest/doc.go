// Package shoptest holds helpers for the shop's tests: throwaway databases,
// branch calls as the coordinator makes them, and an in-process coordinator.
package shoptest
