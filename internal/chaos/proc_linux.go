package chaos

import "syscall"

// sysProcAttr kills the children if the chaos process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
