// Package relay joins a client's connection to the replica that serves its mailbox, for the
// login proxies of IMAP and POP3: bytes pass both ways, untouched, until either side closes.
package relay

import (
	"context"
	"io"
	"net"
	"sync"
)

// Run copies client to up and upR (up's reader, which may hold bytes read already) to client
// until either side closes or ctx ends (the server shuts down); then both connections close.
func Run(ctx context.Context, client, up net.Conn, upR io.Reader) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			up.Close()
		})
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	done := make(chan struct{})
	go func() {
		io.Copy(up, client)
		closeBoth()
		close(done)
	}()
	io.Copy(client, upR)
	closeBoth()
	<-done
}
