// Package image_test builds the container image with `make image-tar` and checks the tarball
// the way `docker load` reads it, with archive/tar only, so the check does not trust the
// library that wrote it.
package image_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/test/testenv"
)

const (
	version = "v1.2.3-test"
	tag     = "kubemail/kubemail:" + version
)

// dockerArchive is a `docker save` tarball's content.
type dockerArchive struct {
	files map[string][]byte
}

// manifestEntry is one image in manifest.json.
type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// imageConfig is the part of the OCI/Docker image config the test checks.
type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// layerFile is one file in the image's filesystem.
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

func makeImageTar(t *testing.T, out string) {
	t.Helper()
	cmd := exec.Command("make", "-s", "image-tar", "VERSION="+version, "IMG="+tag,
		"IMAGE_TAR="+out, "IMAGE_BUILD_DIR="+filepath.Join(t.TempDir(), "bin"))
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image-tar: %v\n%s", err, b)
	}
}

func readArchive(t *testing.T, path string) dockerArchive {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := dockerArchive{files: map[string][]byte{}}
	tr := tar.NewReader(bufio.NewReader(f))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not a tar archive: %v", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		a.files[h.Name] = b
	}
	return a
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestImageTarball builds the image and checks what docker load, ctr images import and a
// kubelet rely on: the tarball's index, the config and its digest, the layers against the
// config's diff_ids, the filesystem (both binaries, static and executable, the non-root user,
// root certificates, no shell), the entrypoint, user and labels, and that the binaries report the build's version.
func TestImageTarball(t *testing.T) {
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "kubemail.tar")
	makeImageTar(t, tarPath)
	a := readArchive(t, tarPath)

	m, cfg := checkManifestAndConfig(t, a)
	fs := unpackLayers(t, a, m, cfg)
	checkFilesystem(t, fs)
	checkBinaries(t, fs)

	// The same sources give the same image, byte for byte.
	again := filepath.Join(dir, "again.tar")
	makeImageTar(t, again)
	if m2 := readArchive(t, again).files["manifest.json"]; !bytes.Equal(m2, a.files["manifest.json"]) {
		t.Errorf("two builds of one commit differ:\n%s\n%s", a.files["manifest.json"], m2)
	}
}

// checkManifestAndConfig checks the tarball's one image: its tag, its config's digest, and the
// platform, user, entrypoint, env, labels and layer count the config gives.
func checkManifestAndConfig(t *testing.T, a dockerArchive) (manifestEntry, imageConfig) {
	var manifest []manifestEntry
	if err := json.Unmarshal(a.files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 {
		t.Fatalf("manifest.json lists %d images, want 1", len(manifest))
	}
	m := manifest[0]
	if !slices.Equal(m.RepoTags, []string{tag}) {
		t.Errorf("RepoTags %v, want [%s]: docker load would leave the image untagged or misnamed", m.RepoTags, tag)
	}
	rawConfig, ok := a.files[m.Config]
	if !ok {
		t.Fatalf("config %s is not in the tarball", m.Config)
	}
	if want := sha(rawConfig); strings.TrimPrefix(m.Config, "sha256:") != strings.TrimPrefix(want, "sha256:") {
		t.Errorf("config file %s has digest %s; the image ID would not match", m.Config, want)
	}
	var cfg imageConfig
	if err := json.Unmarshal(rawConfig, &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root, numeric so runAsNonRoot can verify it)", cfg.Config.User)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/manager"}) || len(cfg.Config.Cmd) != 0 {
		t.Errorf("entrypoint %v cmd %v, want [/manager] and no cmd", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if len(cfg.Config.Env) != 0 {
		t.Errorf("env %v, want none", cfg.Config.Env)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   "https://github.com/kubemail/kubemail",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.licenses": "Apache-2.0",
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		t.Fatalf("rootfs %+v for %d layers", cfg.RootFS, len(m.Layers))
	}
	return m, cfg
}

// unpackLayers unpacks the layers in order, as a container runtime would, checking each
// against the config's diff_ids.
func unpackLayers(t *testing.T, a dockerArchive, m manifestEntry, cfg imageConfig) map[string]layerFile {
	fs := map[string]layerFile{}
	for i, name := range m.Layers {
		blob, ok := a.files[name]
		if !ok {
			t.Fatalf("layer %s is not in the tarball", name)
		}
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatalf("layer %s: %v", name, err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("layer %s: %v", name, err)
		}
		if got := sha(raw); got != cfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %s has diff_id %s, config says %s: docker load would refuse it", name, got, cfg.RootFS.DiffIDs[i])
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", name, err)
			}
			data, _ := io.ReadAll(tr)
			fs["/"+strings.TrimSuffix(h.Name, "/")] = layerFile{h, data}
		}
	}
	return fs
}

// checkFilesystem checks the image has no shell, has the non-root user and group, root
// certificates and a sticky /tmp.
func checkFilesystem(t *testing.T, fs map[string]layerFile) {
	for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/busybox"} {
		if _, ok := fs[shell]; ok {
			t.Errorf("image has %s; it should have no shell", shell)
		}
	}
	if f := fs["/etc/passwd"]; !regexp.MustCompile(`(?m)^nonroot:x:65532:65532:`).Match(f.data) {
		t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", f.data)
	}
	if f := fs["/etc/group"]; !regexp.MustCompile(`(?m)^nonroot:x:65532:`).Match(f.data) {
		t.Errorf("/etc/group has no nonroot group 65532:\n%s", f.data)
	}
	// Outbound mail verifies smarthosts and MX hosts with the system roots.
	if f := fs["/etc/ssl/certs/ca-certificates.crt"]; !x509.NewCertPool().AppendCertsFromPEM(f.data) || f.hdr.Mode&0o777 != 0o644 {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt missing, unreadable or without certificates")
	}
	if f, ok := fs["/tmp"]; !ok || f.hdr.Typeflag != tar.TypeDir || f.hdr.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp missing or not a 1777 directory")
	}
}

// checkBinaries checks both binaries: root-owned, executable, static, and reporting the
// build's version.
func checkBinaries(t *testing.T, fs map[string]layerFile) {
	bin := t.TempDir()
	for _, b := range []string{"manager", "mailserver"} {
		f, ok := fs["/"+b]
		if !ok {
			t.Fatalf("image has no /%s", b)
		}
		if f.hdr.Typeflag != tar.TypeReg || f.hdr.Mode&0o777 != 0o755 || f.hdr.Uid != 0 {
			t.Errorf("/%s: type %c mode %o uid %d, want a regular root-owned file with mode 0755", b, f.hdr.Typeflag, f.hdr.Mode, f.hdr.Uid)
		}
		path := filepath.Join(bin, b)
		if err := os.WriteFile(path, f.data, os.FileMode(f.hdr.Mode&0o777)); err != nil {
			t.Fatal(err)
		}
		// The base is empty: a dynamically linked binary would not start.
		e, err := elf.Open(path)
		if err != nil {
			t.Fatalf("/%s is not an ELF binary: %v", b, err)
		}
		for _, p := range e.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("/%s is dynamically linked; it cannot run on an empty base", b)
			}
		}
		e.Close()
		out, err := exec.Command(path, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("/%s --version: %v\n%s", b, err, out)
		}
		if want := fmt.Sprintf("kubemail %s %s", b, version); strings.TrimSpace(string(out)) != want {
			t.Errorf("/%s --version printed %q, want %q", b, strings.TrimSpace(string(out)), want)
		}
	}
}

// TestDockerfileMatches keeps the Dockerfile (which cannot be built here) in step with the
// image make image-tar builds: empty base, the same user, entrypoint and labels.
func TestDockerfileMatches(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	final := df[strings.LastIndex(df, "\nFROM "):]
	for _, want := range []string{
		"\nFROM scratch\n",
		"\nUSER 65532:65532\n",
		"\nENTRYPOINT [\"/manager\"]\n",
		"COPY --from=build /out/manager /out/mailserver /\n",
		`org.opencontainers.image.source="https://github.com/kubemail/kubemail"`,
		`org.opencontainers.image.version="${VERSION}"`,
		`org.opencontainers.image.licenses="Apache-2.0"`,
	} {
		if !strings.Contains(final, want) {
			t.Errorf("the Dockerfile's final stage lacks %q", strings.TrimSpace(want))
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "internal/version.Version=${VERSION}", "chmod 1777 /rootfs/tmp",
		"cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/",
		"nonroot:x:65532:65532:", "nonroot:x:65532:"} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile's build stage lacks %q", want)
		}
	}
}
