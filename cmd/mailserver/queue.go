package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/mailserver/queue"
	"github.com/kubemail/kubemail/mailserver/server"
)

const queueUsage = `usage: mailserver queue [flags] list | show ID | retry ID | delete ID

Talks to the running server through the admin socket in its data directory.

  list        queued messages, oldest first
  show ID     one message: envelope, each recipient's state, last answers, header
  retry ID    attempt delivery now
  delete ID   drop the message without a bounce

flags:
`

// runQueue is the "mailserver queue" command.
func runQueue(args []string) error {
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), queueUsage)
		fs.PrintDefaults()
	}
	configPath := fs.String("config", os.Getenv("KUBEMAIL_CONFIG"), "the server's settings file, to find its data directory (default $KUBEMAIL_CONFIG)")
	dataDir := fs.String("data-dir", "", "the server's data directory")
	socket := fs.String("socket", "", "the admin socket (default <data-dir>/"+server.AdminSocketName+")")
	asJSON := fs.Bool("json", false, "print JSON")
	// Flags may come before or after the action.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fs.Usage()
		return errors.New("no action given")
	}
	path, err := socketPath(*socket, *dataDir, *configPath)
	if err != nil {
		return err
	}
	c := &adminClient{socket: path}
	action, id := pos[0], ""
	if action != "list" {
		if len(pos) != 2 {
			return fmt.Errorf("%s needs one message ID", action)
		}
		id = pos[1]
	} else if len(pos) != 1 {
		return errors.New("list takes no arguments")
	}
	switch action {
	case "list":
		var msgs []server.QueueEntry
		if err := c.do("GET", "/queue", &msgs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(msgs)
		}
		printList(os.Stdout, msgs)
	case "show":
		var m server.QueueEntry
		if err := c.do("GET", "/queue/"+id, &m); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(m)
		}
		printMessage(os.Stdout, m)
	case "retry":
		if err := c.do("POST", "/queue/"+id+"/retry", nil); err != nil {
			return err
		}
		fmt.Printf("%s: delivery will be attempted now\n", id)
	case "delete":
		if err := c.do("DELETE", "/queue/"+id, nil); err != nil {
			return err
		}
		fmt.Printf("%s: deleted\n", id)
	default:
		fs.Usage()
		return fmt.Errorf("unknown action %q", action)
	}
	return nil
}

func socketPath(socket, dataDir, configPath string) (string, error) {
	switch {
	case socket != "":
		return socket, nil
	case dataDir != "":
		return filepath.Join(dataDir, server.AdminSocketName), nil
	case configPath != "":
		cfg, err := config.Load(configPath)
		if err != nil {
			return "", err
		}
		return filepath.Join(cfg.DataDir, server.AdminSocketName), nil
	}
	return "", errors.New("which server? pass --config FILE (or set KUBEMAIL_CONFIG), --data-dir DIR or --socket PATH")
}

type adminClient struct{ socket string }

func (c *adminClient) do(method, path string, out any) error {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.socket)
		}}}
	req, err := http.NewRequest(method, "http://mailserver"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the server at %s (is it running?): %w", c.socket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s", strings.TrimSpace(string(body)))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printList(w io.Writer, msgs []server.QueueEntry) {
	if len(msgs) == 0 {
		fmt.Fprintln(w, "The queue is empty.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tSIZE\tATTEMPTS\tNEXT\tFROM\tPENDING\tLAST RESULT")
	for _, m := range msgs {
		pending := m.Pending()
		last := ""
		for _, r := range m.Recipients {
			if r.Status == queue.StatusPending && r.LastResult != "" {
				last = r.LastResult
				break
			}
		}
		if len(last) > 60 {
			last = last[:57] + "..."
		}
		from := m.From
		if from == "" {
			from = "<>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d/%d\t%s\n", m.ID, age(time.Since(m.Queued)), m.Size, m.Attempts,
			until(m.NextAttempt), from, len(pending), len(m.Recipients), last)
	}
	tw.Flush()
}

func printMessage(w io.Writer, m server.QueueEntry) {
	from := m.From
	if from == "" {
		from = "<> (a bounce; it is never bounced itself)"
	}
	fmt.Fprintf(w, "ID:            %s\n", m.ID)
	fmt.Fprintf(w, "From:          %s\n", from)
	fmt.Fprintf(w, "Size:          %d bytes\n", m.Size)
	fmt.Fprintf(w, "Queued:        %s (%s ago)\n", m.Queued.Format(time.RFC3339), age(time.Since(m.Queued)))
	fmt.Fprintf(w, "Attempts:      %d\n", m.Attempts)
	if !m.LastAttempt.IsZero() {
		fmt.Fprintf(w, "Last attempt:  %s\n", m.LastAttempt.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Next attempt:  %s\n", until(m.NextAttempt))
	fmt.Fprintln(w, "Recipients:")
	for _, r := range m.Recipients {
		fmt.Fprintf(w, "  %s  %s", r.Address, r.Status)
		if r.LastResult != "" {
			fmt.Fprintf(w, "  %s", r.LastResult)
		}
		if r.RemoteMTA != "" {
			fmt.Fprintf(w, "  (%s)", r.RemoteMTA)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Header:\n%s", strings.ReplaceAll(m.Header, "\r\n", "\n"))
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func until(t time.Time) string {
	d := time.Until(t)
	if d <= 0 {
		return "now"
	}
	return "in " + age(d)
}
