package main

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// takeTerminal moves this program into a process group of its own and makes it the terminal's
// foreground group, so Ctrl-C reaches this program (and what it started) but not `make` and
// `go run` above it: they then see a clean exit 0 instead of dying of the signal. restore gives
// the terminal back to the group that had it. Without a terminal it does nothing.
func takeTerminal() (restore func()) {
	tty := os.Stdin.Fd()
	var before int32
	if ioctl(tty, syscall.TIOCGPGRP, &before) != nil || before != int32(syscall.Getpgrp()) {
		// No terminal, or we run in the background (make dev &): the terminal is not ours.
		return func() {}
	}
	// A background group that touches the terminal's settings is stopped by SIGTTOU.
	signal.Ignore(syscall.SIGTTOU)
	if syscall.Setpgid(0, 0) != nil {
		signal.Reset(syscall.SIGTTOU)
		return func() {}
	}
	own := int32(syscall.Getpgrp())
	if ioctl(tty, syscall.TIOCSPGRP, &own) != nil {
		signal.Reset(syscall.SIGTTOU)
		return func() {}
	}
	return func() {
		ioctl(tty, syscall.TIOCSPGRP, &before)
		signal.Reset(syscall.SIGTTOU)
	}
}

func ioctl(fd uintptr, req uint, pgrp *int32) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(req), uintptr(unsafe.Pointer(pgrp))); errno != 0 {
		return errno
	}
	return nil
}
