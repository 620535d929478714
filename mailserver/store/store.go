package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kubemail/kubemail/mailserver/durable"
)

// Store holds every mailbox of one server (one replica) under a root directory:
// <root>/mailboxes/<domain>/<local-part>/<folder>/{cur,tmp,meta,journal}.
type Store struct {
	root string
	log  *slog.Logger

	mu    sync.Mutex
	boxes map[string]*Mailbox
	// opening guards against two goroutines loading the same mailbox at once.
	opening map[string]*sync.WaitGroup
	// counted holds what Usage counted of mailboxes not open (dropped when one opens).
	counted map[string]usage

	headers   *headerCache
	folderIDs atomic.Uint64 // the last id handed to an opened folder
}

// Open opens (creating) a store rooted at root.
func Open(root string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Join(root, "mailboxes"), 0o700); err != nil {
		return nil, fmt.Errorf("opening the mail store: %w", err)
	}
	return &Store{root: root, log: log, boxes: map[string]*Mailbox{}, opening: map[string]*sync.WaitGroup{}, counted: map[string]usage{},
		headers: newHeaderCache(DefaultHeaderCacheBytes)}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) mailboxDir(address string) (string, error) {
	local, domain, ok := strings.Cut(address, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return "", fmt.Errorf("invalid mailbox address %q", address)
	}
	return filepath.Join(s.root, "mailboxes", encodeName(domain), encodeName(local)), nil
}

// Mailbox returns the mailbox for an address, creating its folders on first use. Addresses are
// case-insensitive.
func (s *Store) Mailbox(address string) (*Mailbox, error) {
	address = strings.ToLower(address)
	for {
		s.mu.Lock()
		if m, ok := s.boxes[address]; ok {
			s.mu.Unlock()
			return m, nil
		}
		if wg, ok := s.opening[address]; ok {
			s.mu.Unlock()
			wg.Wait()
			continue
		}
		wg := &sync.WaitGroup{}
		wg.Add(1)
		s.opening[address] = wg
		s.mu.Unlock()

		dir, err := s.mailboxDir(address)
		var m *Mailbox
		if err == nil {
			m, err = openMailbox(s, address, dir)
		}
		s.mu.Lock()
		delete(s.opening, address)
		if err == nil {
			s.boxes[address] = m
			delete(s.counted, address) // its counters are live from now on
		}
		s.mu.Unlock()
		wg.Done()
		return m, err
	}
}

// DeleteMailbox removes a mailbox and all its mail.
func (s *Store) DeleteMailbox(address string) error {
	address = strings.ToLower(address)
	dir, err := s.mailboxDir(address)
	if err != nil {
		return err
	}
	s.mu.Lock()
	m := s.boxes[address]
	delete(s.boxes, address)
	delete(s.counted, address)
	s.mu.Unlock()
	if m != nil {
		m.markDeleted()
	}
	gone := filepath.Join(s.root, "mailboxes", ".deleted-"+randomToken(8))
	if err := os.Rename(dir, gone); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("deleting mailbox %s: %w", address, err)
	}
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}

// Addresses lists every mailbox stored on disk (opened or not), sorted.
func (s *Store) Addresses() ([]string, error) {
	base := filepath.Join(s.root, "mailboxes")
	domains, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range domains {
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			continue
		}
		domain, err := decodeName(d.Name())
		if err != nil {
			continue
		}
		locals, err := os.ReadDir(filepath.Join(base, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, l := range locals {
			if !l.IsDir() || strings.HasPrefix(l.Name(), ".") {
				continue
			}
			if local, err := decodeName(l.Name()); err == nil {
				out = append(out, local+"@"+domain)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Close closes every open mailbox.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.boxes {
		m.close()
	}
	s.boxes = map[string]*Mailbox{}
	s.headers.clear()
	return nil
}
