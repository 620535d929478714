package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubemail/kubemail/mailserver/durable"
)

// FolderMetaFile is the file that makes a directory of a mailbox a folder (UIDVALIDITY, the
// UIDNEXT floor, MAILBOXID).
const FolderMetaFile = metaFile

// MailboxDir is the directory that holds the mailbox of address (which may not exist).
func (s *Store) MailboxDir(address string) (string, error) {
	return s.mailboxDir(strings.ToLower(address))
}

// StagingDir is where a copy of the mailbox of address is built before it is adopted: outside
// the mailboxes, so that nothing serves or counts it meanwhile.
func (s *Store) StagingDir(address string) (string, error) {
	dir, err := s.mailboxDir(strings.ToLower(address))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(filepath.Join(s.root, "mailboxes"), dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.root, "incoming", rel), nil
}

// ErrMailboxExists is Adopt's refusal: this store holds mail for the address already.
var ErrMailboxExists = errors.New("the mailbox is stored here already")

// Adopt makes the copy built in StagingDir(address) this store's mailbox of address. It
// refuses when the store holds the mailbox already with any message in it (an empty one, as a
// login or a status query creates, is replaced).
func (s *Store) Adopt(address string) error {
	address = strings.ToLower(address)
	staging, err := s.StagingDir(address)
	if err != nil {
		return err
	}
	dir, err := s.mailboxDir(address)
	if err != nil {
		return err
	}
	if _, err := os.Stat(staging); err != nil {
		return fmt.Errorf("adopting %s: %w", address, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.boxes[address]; m != nil {
		if m.Count() > 0 {
			return fmt.Errorf("adopting %s: %w", address, ErrMailboxExists)
		}
		m.markDeleted()
		delete(s.boxes, address)
	}
	delete(s.counted, address)
	if _, err := os.Stat(dir); err == nil {
		if u, err := countMailbox(dir); err != nil || u.messages > 0 {
			return fmt.Errorf("adopting %s: %w", address, ErrMailboxExists)
		}
		gone := filepath.Join(s.root, "mailboxes", ".deleted-"+randomToken(8))
		if err := os.Rename(dir, gone); err != nil {
			return err
		}
		defer os.RemoveAll(gone)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := os.Rename(staging, dir); err != nil {
		return fmt.Errorf("adopting %s: %w", address, err)
	}
	return durable.SyncDir(filepath.Dir(dir))
}
