package store

import (
	"os"
	"path/filepath"
	"strings"
)

// usage is a mailbox's stored bytes and messages, counted from its files.
type usage struct{ bytes, messages int64 }

// Usage reports the bytes and messages stored for address. An open mailbox answers from its
// counters. Another is counted from its folders' file names, which carry the sizes, without
// being opened, so asking about every mailbox does not load every index into memory; the count
// is kept until the mailbox is opened, since nothing changes a mailbox without opening it. A
// mailbox with no directory holds nothing.
func (s *Store) Usage(address string) (bytes, messages int64, err error) {
	address = strings.ToLower(address)
	s.mu.Lock()
	if m, ok := s.boxes[address]; ok {
		s.mu.Unlock()
		return m.Usage(), m.Count(), nil
	}
	if u, ok := s.counted[address]; ok {
		s.mu.Unlock()
		return u.bytes, u.messages, nil
	}
	s.mu.Unlock()

	dir, err := s.mailboxDir(address)
	if err != nil {
		return 0, 0, err
	}
	u, err := countMailbox(dir)
	if err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	if _, open := s.boxes[address]; !open {
		s.counted[address] = u
	}
	s.mu.Unlock()
	return u.bytes, u.messages, nil
}

// countMailbox adds up the messages in cur/ of every folder of a mailbox directory, as opening
// the folders would (openMailbox, Folder.load), but reading file names only.
func countMailbox(dir string) (usage, error) {
	var u usage
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return u, nil
	}
	if err != nil {
		return u, err
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if name, err := decodeName(e.Name()); err != nil || ValidateFolderName(name) != nil {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, e.Name(), "cur"))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return u, err
		}
		for _, f := range files {
			if msg, ok := parseMessageFile(f.Name()); ok {
				u.bytes += msg.Size
				u.messages++
			}
		}
	}
	return u, nil
}
