//go:build !linux

package natscluster

import "syscall"

// sysProcAttr: outside Linux a node is not killed with its parent; Close
// stops the nodes.
func sysProcAttr() *syscall.SysProcAttr { return nil }
