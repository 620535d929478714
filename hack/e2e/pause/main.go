// Command pause is the sandbox ("pause") container of the end-to-end test cluster: it holds a
// pod's namespaces open, reaps the zombies its pid namespace hands it, and exits on SIGTERM or
// SIGINT. hack/e2e builds it into an image with hack/image --pause, so the cluster needs no
// registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for { // reap every child that has exited
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
