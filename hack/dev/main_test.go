package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The lines make dev prints use only the mail clients the machine has, or say what to install.
func TestTryItUsesTheClientsThere(t *testing.T) {
	dir := t.TempDir()
	put := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	cases := []struct {
		have      []string
		want      []string
		wantNotIn string
	}{
		{nil, []string{"apt-get install curl swaks", "swaks --server 127.0.0.1:2525"}, ""},
		{[]string{"curl"}, []string{"curl --url 'smtp://127.0.0.1:2525'", "imaps://127.0.0.1:2993", "apt-get install swaks"}, "swaks --server"},
		{[]string{"swaks"}, []string{"swaks --server 127.0.0.1:2525", "apt-get install curl`"}, "neither"},
		{[]string{"curl", "swaks"}, []string{"swaks --server 127.0.0.1:2525", "curl -k --url 'imaps://127.0.0.1:2993"}, "apt-get"},
	}
	for _, c := range cases {
		for _, name := range []string{"curl", "swaks"} {
			os.Remove(filepath.Join(dir, name))
		}
		for _, name := range c.have {
			put(name)
		}
		got := tryIt("127.0.0.1:2525", "127.0.0.1:2993")
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("with %v: %q lacks %q", c.have, got, w)
			}
		}
		if c.wantNotIn != "" && strings.Contains(got, c.wantNotIn) {
			t.Errorf("with %v: %q has %q", c.have, got, c.wantNotIn)
		}
	}
}
