package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// resolveRevision returns the commit hash rev names in this repository.
func resolveRevision(ctx context.Context, rev string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", repoRoot(), "rev-parse", "--verify", "--quiet", rev+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("-baseline %q: not a commit of this repository (git rev-parse: %w)", rev, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// treeRevision describes the tree the measured kubemail is built from: HEAD's hash, and
// "+changes" when files differ from it.
func treeRevision(ctx context.Context) string {
	head, err := exec.CommandContext(ctx, "git", "-C", repoRoot(), "rev-parse", "HEAD").Output()
	if err != nil {
		return "?"
	}
	rev := strings.TrimSpace(string(head))
	if status, err := exec.CommandContext(ctx, "git", "-C", repoRoot(), "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(status) > 0 {
		rev += "+changes"
	}
	return rev
}

// buildRevision builds ./cmd/mailserver as it is at commit into dir/mailserver. The source is
// a copy of that commit's files (git archive) in a temporary folder, removed afterwards: the
// working tree, the index and the repository's list of worktrees stay as they are.
func buildRevision(ctx context.Context, commit, dir string) (string, error) {
	src, err := os.MkdirTemp("", "kmbench-src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	archive := exec.CommandContext(ctx, "git", "-C", repoRoot(), "archive", "--format=tar", commit)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	untar.Stdin = pipe
	var archiveErr, untarErr strings.Builder
	archive.Stderr, untar.Stderr = &archiveErr, &untarErr
	if err := untar.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		untar.Wait()
		return "", fmt.Errorf("git archive %s: %w: %s", commit, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		return "", fmt.Errorf("unpacking git archive %s: %w: %s", commit, err, untarErr.String())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mailserver")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mailserver")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building ./cmd/mailserver at %s: %w\n%s", commit, err, out)
	}
	return bin, nil
}
