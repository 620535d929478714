package tlsconf

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev-tls")
	certFile, keyFile, err := WriteSelfSigned(dir, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if certFile != filepath.Join(dir, "tls.crt") || keyFile != filepath.Join(dir, "tls.key") {
		t.Errorf("wrote %s and %s, want tls.crt and tls.key in %s", certFile, keyFile, dir)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}

	r, err := NewReloader(certFile, keyFile, Options{})
	if err != nil {
		t.Fatalf("written pair does not load: %v", err)
	}
	first := servedSerial(t, r)

	// Writing again replaces the pair, and leaves no temporary files behind.
	if _, _, err := WriteSelfSigned(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("rewritten pair does not load: %v", err)
	}
	if servedSerial(t, r).Cmp(first) == 0 {
		t.Error("second WriteSelfSigned did not replace the certificate")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"tls.crt", "tls.key"}; !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
}
