package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func headerOf(t *testing.T, f *Folder, uid uint32) string {
	t.Helper()
	h, err := f.Header(uid)
	if err != nil {
		t.Fatal(err)
	}
	return string(h.Raw)
}

func TestHeaderCacheHitMiss(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "a@example.com")
	m := appendMsg(t, f, "Subject: hi\nFrom: b@example.com\n\nbody\n")

	if got, want := headerOf(t, f, m.UID), "Subject: hi\r\nFrom: b@example.com\r\n\r\n"; got != want {
		t.Fatalf("header %q, want %q", got, want)
	}
	if st := s.HeaderCacheStats(); st.Misses != 1 || st.Hits != 0 || st.Entries != 1 {
		t.Fatalf("after the first read: %+v, want 1 miss and 1 entry", st)
	}
	// A hit must not touch the file: remove it behind the store's back.
	if err := os.Remove(filepath.Join(f.dir, "cur", m.file)); err != nil {
		t.Fatal(err)
	}
	if got := headerOf(t, f, m.UID); !strings.HasPrefix(got, "Subject: hi") {
		t.Fatalf("cached header %q", got)
	}
	if st := s.HeaderCacheStats(); st.Hits != 1 {
		t.Fatalf("after the second read: %+v, want 1 hit", st)
	}
	if _, err := f.Header(m.UID + 1); !errors.Is(err, ErrNoSuchMessage) {
		t.Fatalf("header of an unknown UID: %v, want ErrNoSuchMessage", err)
	}
}

func TestHeaderCacheFlagChangesKeepEntry(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "a@example.com")
	m := appendMsg(t, f, "Subject: one\n\nbody\n")
	headerOf(t, f, m.UID)
	if _, err := f.SetFlags([]uint32{m.UID}, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	if got := headerOf(t, f, m.UID); got != "Subject: one\r\n\r\n" {
		t.Fatalf("header after a flag change %q", got)
	}
	if st := s.HeaderCacheStats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("a flag change (file rename) dropped the entry: %+v", st)
	}
}

func TestHeaderCacheEvictsWithinBudget(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "a@example.com")
	subject := strings.Repeat("x", 1000)
	var uids []uint32
	for i := range 20 {
		uids = append(uids, appendMsg(t, f, fmt.Sprintf("Subject: %d %s\n\nbody\n", i, subject)).UID)
	}
	budget := int64(5 * (1020 + headerEntryOverhead))
	s.SetHeaderCacheBytes(budget)
	for _, uid := range uids {
		headerOf(t, f, uid)
	}
	st := s.HeaderCacheStats()
	if st.Bytes > budget || st.Entries == 0 || st.Entries > 5 || st.Evictions == 0 {
		t.Fatalf("after reading 20 headers into a budget for 5: %+v", st)
	}
	// The most recently read are kept, the oldest went.
	hits := st.Hits
	headerOf(t, f, uids[len(uids)-1])
	if got := s.HeaderCacheStats().Hits; got != hits+1 {
		t.Fatalf("the last header read was evicted (hits %d -> %d)", hits, got)
	}
	misses := s.HeaderCacheStats().Misses
	headerOf(t, f, uids[0])
	if got := s.HeaderCacheStats().Misses; got != misses+1 {
		t.Fatalf("the first header read is still cached (misses %d -> %d)", misses, got)
	}

	s.SetHeaderCacheBytes(0)
	if st := s.HeaderCacheStats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("a zero budget keeps entries: %+v", st)
	}
	if got := headerOf(t, f, uids[3]); !strings.HasPrefix(got, "Subject: 3 ") {
		t.Fatalf("header without a cache %q", got)
	}
	if st := s.HeaderCacheStats(); st.Entries != 0 {
		t.Fatalf("a zero budget cached a header: %+v", st)
	}
}

func TestHeaderCacheDropsExpungedAndDeleted(t *testing.T) {
	s := openStore(t, t.TempDir())
	mb, err := s.Mailbox("a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	f := mb.Inbox()
	a := appendMsg(t, f, "Subject: a\n\nbody\n")
	b := appendMsg(t, f, "Subject: b\n\nbody\n")
	headerOf(t, f, a.UID)
	headerOf(t, f, b.UID)
	if _, err := f.Expunge([]uint32{a.UID}); err != nil {
		t.Fatal(err)
	}
	if st := s.HeaderCacheStats(); st.Entries != 1 {
		t.Fatalf("after an expunge: %+v, want 1 entry", st)
	}
	if _, err := f.Header(a.UID); !errors.Is(err, ErrNoSuchMessage) {
		t.Fatalf("header of an expunged message: %v, want ErrNoSuchMessage", err)
	}

	other, err := mb.CreateFolder("Other")
	if err != nil {
		t.Fatal(err)
	}
	c := appendMsg(t, other, "Subject: c\n\nbody\n")
	headerOf(t, other, c.UID)
	if err := mb.DeleteFolder("Other"); err != nil {
		t.Fatal(err)
	}
	if st := s.HeaderCacheStats(); st.Entries != 1 {
		t.Fatalf("after deleting a folder: %+v, want 1 entry", st)
	}
	// A folder created again under the same name starts at UID 1 with other mail.
	again, err := mb.CreateFolder("Other")
	if err != nil {
		t.Fatal(err)
	}
	d := appendMsg(t, again, "Subject: d\n\nbody\n")
	if got := headerOf(t, again, d.UID); got != "Subject: d\r\n\r\n" {
		t.Fatalf("header in the re-created folder %q", got)
	}

	if err := s.DeleteMailbox("a@example.com"); err != nil {
		t.Fatal(err)
	}
	if st := s.HeaderCacheStats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("after purging the mailbox: %+v, want nothing cached", st)
	}
}

func TestHeaderCacheConcurrentReadersAndExpunges(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "a@example.com")
	var uids []uint32
	for i := range 50 {
		uids = append(uids, appendMsg(t, f, fmt.Sprintf("Subject: %d\n\nbody\n", i)).UID)
	}
	s.SetHeaderCacheBytes(20 * (20 + headerEntryOverhead)) // evictions too
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				uid := uids[(i*7+r)%len(uids)]
				h, err := f.Header(uid)
				if errors.Is(err, ErrNoSuchMessage) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("Subject: %d\r\n\r\n", uid-1); string(h.Raw) != want {
					t.Errorf("UID %d: header %q, want %q", uid, h.Raw, want)
					return
				}
			}
		}()
	}
	for _, uid := range uids[:25] {
		if _, err := f.Expunge([]uint32{uid}); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	for _, uid := range uids[:25] {
		if _, err := f.Header(uid); !errors.Is(err, ErrNoSuchMessage) {
			t.Fatalf("UID %d was expunged, header: %v", uid, err)
		}
	}
	if st := s.HeaderCacheStats(); st.Bytes > st.Budget {
		t.Fatalf("over budget: %+v", st)
	}
	// Nothing of the expunged messages may stay behind.
	s.headers.mu.Lock()
	defer s.headers.mu.Unlock()
	for _, uid := range uids[:25] {
		if _, ok := s.headers.byFolder[f.id][uid]; ok {
			t.Fatalf("UID %d was expunged and is still cached", uid)
		}
	}
}

// A memo is computed once per cached header, shared by later readers, and its bytes count
// against the budget: memos that would not fit push headers out.
func TestHeaderCacheMemo(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "a@example.com")
	var uids []uint32
	for i := range 4 {
		uids = append(uids, appendMsg(t, f, fmt.Sprintf("Subject: %d\n\nbody\n", i)).UID)
	}
	s.SetHeaderCacheBytes(4 * (14 + headerEntryOverhead + 100))
	computed := 0
	memo := func(uid uint32) any {
		h, err := f.Header(uid)
		if err != nil {
			t.Fatal(err)
		}
		return h.Memo(func(raw []byte) (any, int) {
			computed++
			return strings.ToUpper(string(raw)), 100
		})
	}
	if got := memo(uids[0]); got != "SUBJECT: 0\r\n\r\n" {
		t.Fatalf("memo %q", got)
	}
	before := s.HeaderCacheStats().Bytes
	if got := memo(uids[0]); got != "SUBJECT: 0\r\n\r\n" || computed != 1 {
		t.Fatalf("second reader: %q, computed %d times, want once", got, computed)
	}
	if after := s.HeaderCacheStats().Bytes; after != before {
		t.Fatalf("a shared memo was counted again: %d -> %d bytes", before, after)
	}
	for _, uid := range uids {
		memo(uid)
	}
	st := s.HeaderCacheStats()
	if st.Entries != 4 || st.Bytes != 4*(14+headerEntryOverhead+100) {
		t.Fatalf("four headers with memos of 100 bytes: %+v", st)
	}
	// Memos of 400 bytes do not fit beside each other: each pushes the others out.
	s.SetHeaderCacheBytes(2 * (14 + headerEntryOverhead + 400))
	s.SetHeaderCacheBytes(0)
	s.SetHeaderCacheBytes(2 * (14 + headerEntryOverhead + 400))
	for _, uid := range uids {
		h, _ := f.Header(uid)
		h.Memo(func(raw []byte) (any, int) { return nil, 400 })
	}
	if st := s.HeaderCacheStats(); st.Bytes > st.Budget || st.Entries > 2 || st.Evictions == 0 {
		t.Fatalf("memos beyond the budget: %+v", st)
	}
}
