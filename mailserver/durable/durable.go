// Package durable writes files so that they survive a crash once the call returns: data fsynced,
// then the directory entry fsynced. The store and the outbound queue use it.
package durable

import (
	"bufio"
	"io"
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

// WriteNew creates path, which must not exist, fills it through write and fsyncs it. On failure
// the file is removed. Its directory entry is not yet durable: a caller that writes into a
// staging directory (Maildir's tmp/) renames the file into place, calls SyncDir on the target
// directory, and only then tells anyone the data is safe.
func WriteNew(path string, perm os.FileMode, write func(w *bufio.Writer) error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	err = syncClose(f, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		os.Remove(path)
	}
	return err
}

func writeTemp(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	err = syncClose(f, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// syncClose writes f through write, fsyncs and closes it. f is closed whatever fails.
func syncClose(f *os.File, write func(io.Writer) error) error {
	err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Remove deletes path and makes the removal durable.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}
