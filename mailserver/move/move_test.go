package move

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/store"
)

const addr = "jörg@example.com"

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func message(subject string) io.Reader {
	return strings.NewReader("From: a@example.org\r\nSubject: " + subject + "\r\n\r\nbody of " + subject + "\r\n")
}

// fill gives the source mailbox folders, messages with flags and keywords, an expunged
// message, a subscription and a folder only created.
func fill(t *testing.T, st *store.Store) *store.Mailbox {
	t.Helper()
	mb, err := st.Mailbox(addr)
	if err != nil {
		t.Fatal(err)
	}
	archive, err := mb.CreateFolder("Archive/2026")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.CreateFolder("Empty"); err != nil {
		t.Fatal(err)
	}
	if err := mb.Subscribe("Archive/2026"); err != nil {
		t.Fatal(err)
	}
	date := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for i := range 5 {
		if _, err := mb.Inbox().Append(message(fmt.Sprint("inbox ", i)), []string{`\Seen`}, date.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := archive.Append(message(fmt.Sprint("archive ", i)), nil, date); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mb.Inbox().SetFlags([]uint32{2, 3}, store.FlagsAdd, []string{`\Flagged`, "$Important"}); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Inbox().Expunge([]uint32{4}); err != nil {
		t.Fatal(err)
	}
	return mb
}

// state is what a client could see of a mailbox: each folder's status and messages, and the
// subscriptions.
type state struct {
	Folders       map[string]folderState
	Subscriptions []string
}

type folderState struct {
	Status    store.FolderStatus
	MailboxID string
	Messages  []store.Message
	Bodies    []string
}

func snapshot(t *testing.T, mb *store.Mailbox) state {
	t.Helper()
	s := state{Folders: map[string]folderState{}}
	for _, fi := range mb.Folders() {
		f, err := mb.Folder(fi.Name)
		if err != nil {
			t.Fatal(err)
		}
		msgs, st := f.Messages()
		fs := folderState{Status: st, MailboxID: f.MailboxID(), Messages: msgs}
		for _, m := range msgs {
			r, err := f.Open(m.UID)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			r.Close()
			fs.Bodies = append(fs.Bodies, string(b))
		}
		s.Folders[fi.Name] = fs
	}
	var err error
	if s.Subscriptions, err = mb.Subscriptions(); err != nil {
		t.Fatal(err)
	}
	return s
}

// pullAndAdopt pulls the source's mailbox into dst's staging folder and adopts it.
func pull(t *testing.T, src *store.Store, dst *store.Store) Stats {
	t.Helper()
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()
	staging, err := dst.StagingDir(addr)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := Pull(context.Background(), srv.Client(), srv.URL, addr, staging)
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

// A pulled and adopted mailbox is the same to every client: UIDVALIDITY, UIDs, UIDNEXT,
// HIGHESTMODSEQ, flags and keywords, modification sequences, internal dates, object ids, the
// messages' bytes and the subscriptions.
func TestPullCopiesAMailboxExactly(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	want := snapshot(t, fill(t, src))
	stats := pull(t, src, dst)
	if stats.Files == 0 || stats.Bytes == 0 || stats.Removed != 0 {
		t.Errorf("first pull: %+v", stats)
	}
	if err := dst.Adopt(addr); err != nil {
		t.Fatal(err)
	}
	mb, err := dst.Mailbox(addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, mb); !reflect.DeepEqual(got, want) {
		t.Fatalf("the copy differs:\n got %+v\nwant %+v", got, want)
	}
	if n, _ := dst.Addresses(); len(n) != 1 {
		t.Errorf("addresses on the target after adopting: %v", n)
	}
}

// A second pull fetches only what changed: new and re-flagged messages, the metadata; it removes
// what the source expunged and the folders it deleted.
func TestPullCatchesUp(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	mb := fill(t, src)
	pull(t, src, dst)

	if _, err := mb.Inbox().Append(message("late"), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Inbox().SetFlags([]uint32{1}, store.FlagsAdd, []string{`\Answered`}); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Inbox().Expunge([]uint32{5}); err != nil {
		t.Fatal(err)
	}
	if err := mb.DeleteFolder("Empty"); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.CreateFolder("New"); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, mb)
	stats := pull(t, src, dst)
	if stats.Removed < 2 { // the expunged message, and the re-flagged one under its old name
		t.Errorf("catch-up removed %d files", stats.Removed)
	}
	if stats.Files > 8 { // the new and re-flagged messages, the metadata files
		t.Errorf("catch-up fetched %d files; the unchanged messages should not come again", stats.Files)
	}
	if err := dst.Adopt(addr); err != nil {
		t.Fatal(err)
	}
	got, err := dst.Mailbox(addr)
	if err != nil {
		t.Fatal(err)
	}
	if g := snapshot(t, got); !reflect.DeepEqual(g, want) {
		t.Fatalf("after the catch-up the copy differs:\n got %+v\nwant %+v", g, want)
	}
}

// A target that holds mail for the address refuses to adopt a copy; an empty mailbox (created
// by a login) is replaced.
func TestAdoptRefusesAStoredMailbox(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	fill(t, src)
	pull(t, src, dst)
	mb, err := dst.Mailbox(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Adopt(addr); err != nil {
		t.Fatalf("adopting over an empty mailbox: %v", err)
	}
	if mb, err = dst.Mailbox(addr); err != nil || mb.Count() != 9 {
		t.Fatalf("the adopted mailbox: %v messages, %v", mb.Count(), err)
	}
	pull(t, src, dst)
	if err := dst.Adopt(addr); err == nil {
		t.Fatal("a copy replaced a mailbox with mail in it")
	}
}

func TestHandlerRefusesPathsOutsideTheMailbox(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()
	for _, p := range []string{"../../x", "/etc/passwd", "INBOX/tmp/x", "INBOX/../../y", "", "INBOX\\..\\meta"} {
		resp, err := http.Get(srv.URL + "/v1/move/" + addr + "/file?path=" + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("path %q: %s, want 400", p, resp.Status)
		}
	}
}
