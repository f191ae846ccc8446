//go:build !linux

package chaos

import "syscall"

// sysProcAttr: outside Linux children are not killed with their parent;
// Run stops them before it returns.
func sysProcAttr() *syscall.SysProcAttr { return nil }
