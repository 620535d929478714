// Package move copies a mailbox from the replica that holds it to another one, exactly: every
// folder with its UIDVALIDITY, UIDs, flags and keywords, modification sequences, internal
// dates, object ids, and the subscriptions, so that no client notices (IMAP caches stay valid,
// POP3 UIDLs stay the same). The store's files are the mailbox (see package store), so a copy
// is a sync of the mailbox's directory tree: the target pulls the source's list of files and
// fetches what it lacks or what changed. Syncs repeat while the mailbox is live, each one
// shorter; the last runs with the mailbox frozen on the source and leaves an exact copy.
//
// Message files never change once written (a flag change renames them: the name holds the
// UID, the size and the standard flags), so a file already fetched under the same name and
// size is not fetched again; the small metadata files (meta, journal, subscriptions) are
// listed with a hash of their content and fetched when it differs.
package move

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kubemail/kubemail/mailserver/durable"
	"github.com/kubemail/kubemail/mailserver/store"
)

// File is one file of a mailbox: its path under the mailbox's directory (slash-separated),
// its size, and for a file that changes under its name (not a message) a hash of its content.
type File struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Sum  string `json:"sum,omitempty"`
}

// immutable reports whether the file at p never changes under its name: a message file.
func immutable(p string) bool { return path.Base(path.Dir(p)) == "cur" }

// skipped reports whether the file at p is no part of the mailbox: a delivery in progress
// (tmp/), a deletion a crash interrupted, or a sync's own temporary file.
func skipped(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == "tmp" || strings.HasPrefix(part, ".deleted-") || strings.HasPrefix(part, ".pull-") {
			return true
		}
	}
	return false
}

// Manifest lists the files of the mailbox stored in dir, sorted by path. A mailbox never
// stored has none.
func Manifest(dir string) ([]File, error) {
	var out []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile (a renamed message file, a deleted folder)
			}
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skipped(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		f := File{Path: rel, Size: info.Size()}
		if !immutable(rel) {
			if f.Sum, err = sum(p); errors.Is(err, fs.ErrNotExist) {
				return nil
			} else if err != nil {
				return err
			}
		}
		out = append(out, f)
		return nil
	})
	return out, err
}

// sum is the SHA-256 of the file at p, in hex.
func sum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Handler serves the mailboxes of st to the replicas that pull them:
//
//	GET /v1/move/{address}/manifest      the mailbox's files (JSON)
//	GET /v1/move/{address}/file?path=P   one file
//
// It must be reachable by the cluster's replicas alone (the internal listener).
func Handler(st *store.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/move/{address}/manifest", func(w http.ResponseWriter, r *http.Request) {
		dir, err := st.MailboxDir(r.PathValue("address"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		files, err := Manifest(dir)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(files)
	})
	mux.HandleFunc("GET /v1/move/{address}/file", func(w http.ResponseWriter, r *http.Request) {
		dir, err := st.MailboxDir(r.PathValue("address"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p, err := cleanPath(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(p)))
		if errors.Is(err, fs.ErrNotExist) {
			http.Error(w, "no such file (changed since the manifest)", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, f)
	})
	return mux
}

// cleanPath accepts a manifest path: relative, slash-separated, inside the mailbox, no part
// of it skipped.
func cleanPath(p string) (string, error) {
	if p == "" || p != path.Clean(p) || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") ||
		strings.Contains(p, "\\") || skipped(p) {
		return "", fmt.Errorf("invalid path %q", p)
	}
	return p, nil
}

// Stats says what one sync did.
type Stats struct {
	Files   int   // fetched
	Bytes   int64 // fetched
	Removed int   // local files the source no longer has
	Skipped int   // listed, but gone from the source when fetched (it changed meanwhile)
}

// Pull brings the copy of address in dir up to date with the source served at base (an
// http:// URL of Handler) through client. A file the source renamed or removed between its
// manifest and the fetch is skipped: the next Pull finds it under its new name. Everything
// fetched is durable when Pull returns.
func Pull(ctx context.Context, client *http.Client, base, address, dir string) (Stats, error) {
	var st Stats
	prefix := strings.TrimSuffix(base, "/") + "/v1/move/" + url.PathEscape(address)
	var files []File
	if err := getJSON(ctx, client, prefix+"/manifest", &files); err != nil {
		return st, fmt.Errorf("the source's manifest: %w", err)
	}
	have, err := Manifest(dir)
	if err != nil {
		return st, err
	}
	local := map[string]File{}
	for _, f := range have {
		local[f.Path] = f
	}
	dirty := map[string]bool{} // directories to fsync
	want := map[string]bool{}
	for _, f := range files {
		p, err := cleanPath(f.Path)
		if err != nil {
			return st, fmt.Errorf("the source's manifest: %w", err)
		}
		want[p] = true
		if l, ok := local[p]; ok && l.Size == f.Size && l.Sum == f.Sum {
			continue // the same message file, or metadata unchanged
		}
		n, err := fetch(ctx, client, prefix+"/file?path="+url.QueryEscape(p), filepath.Join(dir, filepath.FromSlash(p)))
		switch {
		case errors.Is(err, errGone):
			st.Skipped++
			continue
		case err != nil:
			return st, fmt.Errorf("fetching %s: %w", p, err)
		}
		st.Files++
		st.Bytes += n
		dirty[path.Dir(p)] = true
		if path.Base(p) == store.FolderMetaFile {
			// A folder: its message directories exist even while they are empty.
			for _, sub := range []string{"cur", "tmp"} {
				if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(path.Dir(p)), sub), 0o700); err != nil {
					return st, err
				}
			}
		}
	}
	for p := range local {
		if want[p] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(p))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, err
		}
		st.Removed++
		dirty[path.Dir(p)] = true
	}
	if err := removeEmptyDirs(dir, files); err != nil {
		return st, err
	}
	for d := range dirty {
		if err := durable.SyncDir(filepath.Join(dir, filepath.FromSlash(d))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, err
		}
	}
	return st, nil
}

// errGone is a file the source listed and no longer has.
var errGone = errors.New("gone from the source")

// fetch writes the file at u to dst durably (a temporary file fsynced, then renamed) and
// returns its size.
func fetch(ctx context.Context, client *http.Client, u, dst string) (int64, error) {
	resp, err := get(ctx, client, u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, err
	}
	tmp := filepath.Join(filepath.Dir(dst), ".pull-"+filepath.Base(dst))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return n, nil
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	resp, err := get(ctx, client, u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// get requests u; an answer other than 200 is an error, errGone for 404.
func get(ctx context.Context, client *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, errGone
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
}

// removeEmptyDirs removes the folders the source no longer has: directories left empty that
// hold none of its files (a folder's cur/ and tmp/ are kept while the folder is).
func removeEmptyDirs(dir string, files []File) error {
	keep := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			keep[d] = true
		}
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		dirs = append(dirs, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	// Deepest first, so that a folder's own directory is empty once its cur/ and tmp/ are gone.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		parent := path.Dir(d)
		if keep[d] || (path.Base(d) == "cur" || path.Base(d) == "tmp") && keep[parent] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(d))); err != nil && !isNotEmpty(err) && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func isNotEmpty(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not empty")
}
