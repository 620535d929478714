// Package durable writes files so that they survive a crash once the call returns: data fsynced,
// then the directory entry fsynced. The store and the outbound queue use it.
package durable

import (
	"os"
	"path/filepath"
)

// SyncDir makes the entries of dir (files created, renamed or removed in it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFile replaces path with data: a temporary file in the same directory is written,
// fsynced and renamed over path, then the directory is fsynced. A crash leaves either the old
// or the new content, never a mix; temporary files left behind start with ".tmp-".
func WriteFile(path string, data []byte, perm os.FileMode) error {
	if err := writeTemp(path, data, perm); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteFileNoDirSync is WriteFile without the directory fsync, for callers that write several
// files into one directory and sync it once.
func WriteFileNoDirSync(path string, data []byte, perm os.FileMode) error {
	return writeTemp(path, data, perm)
}

func writeTemp(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Remove deletes path and makes the removal durable.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}
