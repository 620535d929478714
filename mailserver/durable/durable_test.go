package durable

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "msg")
	body := strings.Repeat("0123456789", 20_000) // more than the write buffer
	if err := WriteNew(path, 0o640, func(w *bufio.Writer) error {
		_, err := w.WriteString(body)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != body {
		t.Errorf("file holds %d bytes, want the %d written", len(got), len(body))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640&^umask(t) {
		t.Errorf("mode %v, %v; want %v", fi.Mode().Perm(), err, fs.FileMode(0o640)&^umask(t))
	}

	// An existing file is neither overwritten nor removed.
	err = WriteNew(path, 0o600, func(w *bufio.Writer) error {
		t.Error("write called for a path that exists")
		return nil
	})
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteNew over an existing file = %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(path); string(got) != body {
		t.Errorf("existing file changed to %d bytes", len(got))
	}
}

func TestWriteNewRemovesTheFileOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msg")
	boom := errors.New("client went away")
	err := WriteNew(path, 0o600, func(w *bufio.Writer) error {
		w.WriteString("half a message")
		w.Flush()
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("WriteNew = %v, want the writer's error", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a failed write the file is still there: %v", err)
	}
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second, longer than the first"} {
		if err := WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Errorf("ReadFile = %q, %v; want %q", got, err, content)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only state.json (no temporary files left)", names)
	}
}

func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gone")
	if err := WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // removing what is already gone is not an error
		if err := Remove(path); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Remove: %v", err)
	}
}

// umask returns the process umask, which the mode of a newly created file is subject to.
func umask(t *testing.T) fs.FileMode {
	t.Helper()
	path := filepath.Join(t.TempDir(), "probe")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o777)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return 0o777 &^ fi.Mode().Perm()
}
