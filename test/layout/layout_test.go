// Package layout_test keeps the import graph the README draws: the operator and the mail server
// meet only in internal/.
package layout_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/test/testenv"
)

// deps lists the packages of the module that the given packages import, directly or not.
func deps(t *testing.T, patterns ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, patterns...)...)
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var own []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/kubemail/kubemail/") {
			own = append(own, strings.TrimPrefix(p, "github.com/kubemail/kubemail/"))
		}
	}
	return own
}

func TestOperatorAndServerMeetOnlyInInternal(t *testing.T) {
	for _, tc := range []struct {
		from      string
		forbidden []string
	}{
		{"./internal/...", []string{"mailserver/", "controllers/", "cmd/", "test/"}},
		{"./controllers/...", []string{"mailserver/", "cmd/", "test/"}},
		{"./cmd/manager", []string{"mailserver/"}},
		// The kubectl plugin reaches the servers only through the API server.
		{"./cmd/kubectl-mail", []string{"mailserver/", "controllers/", "test/"}},
		{"./mailserver/...", []string{"controllers/", "api/", "cmd/", "test/"}},
	} {
		own := deps(t, tc.from)
		if len(own) == 0 {
			t.Fatalf("go list found no packages for %s", tc.from)
		}
		for _, p := range own {
			for _, f := range tc.forbidden {
				if strings.HasPrefix(p, f) {
					t.Errorf("%s imports %s", tc.from, p)
				}
			}
		}
	}
}
