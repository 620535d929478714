// Command image builds kubemail's container image from the two static binaries without a
// container engine and writes it as a `docker save` tarball, which `docker load`, `podman load`,
// `kind load image-archive` and `ctr images import` all read. The image is the one the
// Dockerfile describes: the same two layers, user, entrypoint and labels. `make image-tar`
// runs it.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The user the image runs as; the operator's pods and the mail server pods run as the same
// numeric user (internal/names.RunAsUser), so files on volumes keep one owner.
const (
	uid      = 65532
	userName = "nonroot"
)

type options struct {
	pause               string // path of a static pause binary: build the sandbox image instead
	manager, mailserver string // paths of the static binaries
	caBundle            string // PEM root certificates for /etc/ssl/certs/ca-certificates.crt
	version, revision   string
	tag                 string // repository:tag recorded in the tarball
	arch                string
	created             time.Time // every timestamp in the image, for reproducible digests
	out                 string
}

func main() {
	var o options
	var epoch int64
	flag.StringVar(&o.pause, "pause", "", "build the pod sandbox (pause) image of the end-to-end test cluster from this static binary instead of kubemail's image")
	flag.StringVar(&o.manager, "manager", "", "path of the static manager binary")
	flag.StringVar(&o.mailserver, "mailserver", "", "path of the static mailserver binary")
	flag.StringVar(&o.caBundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of root certificates the mail server verifies smarthosts and MX hosts with")
	flag.StringVar(&o.version, "version", "", "version for the org.opencontainers.image.version label")
	flag.StringVar(&o.revision, "revision", "", "source revision (git commit) for the org.opencontainers.image.revision label")
	flag.StringVar(&o.tag, "tag", "", "image reference repository:tag written into the tarball")
	flag.StringVar(&o.arch, "arch", "amd64", "GOARCH the binaries were built for")
	flag.Int64Var(&epoch, "created", 0, "creation time in Unix seconds (SOURCE_DATE_EPOCH) for every timestamp in the image")
	flag.StringVar(&o.out, "out", "", "tarball to write")
	flag.Parse()
	o.created = time.Unix(epoch, 0).UTC()
	if o.pause != "" && (o.tag == "" || o.out == "") {
		fmt.Fprintln(os.Stderr, "image: --pause needs --tag and --out")
		flag.Usage()
		os.Exit(2)
	}
	if o.pause == "" && (o.manager == "" || o.mailserver == "" || o.version == "" || o.tag == "" || o.out == "") {
		fmt.Fprintln(os.Stderr, "image: --manager, --mailserver, --version, --tag and --out are required")
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("--tag %q: %w (want repository:tag)", o.tag, err)
	}
	build := build
	if o.pause != "" {
		build = buildPause
	}
	img, err := build(o)
	if err != nil {
		return err
	}
	// Write next to the target and rename, so an interrupted build never leaves a truncated
	// tarball that `docker load` would half-read.
	tmp := o.out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", o.out, err)
	}
	if err := os.Rename(tmp, o.out); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s (linux/%s, manifest %s)\n", o.out, tag.String(), o.arch, digest)
	// What the chart wants is the tag alone: image.repository already holds the name.
	fmt.Printf("install it with: helm install ... --set image.repository=%s --set-string image.tag=%s\n", strings.TrimSuffix(o.tag, ":"+tag.TagStr()), tag.TagStr())
	return nil
}

// build assembles the image: a base layer with the user database, the root certificates and
// /tmp, then the binaries.
func build(o options) (v1.Image, error) {
	// Outbound mail verifies TLS certificates with the system roots, which an empty base lacks.
	roots, err := os.ReadFile(o.caBundle)
	if err != nil {
		return nil, fmt.Errorf("root certificates: %w (install Debian's ca-certificates, or pass --ca-bundle)", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(roots) {
		return nil, fmt.Errorf("root certificates: no PEM certificates in %s", o.caBundle)
	}
	base, err := layer(o.created, []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf(
			"root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/nonexistent:/sbin/nologin\n", userName, uid, uid, userName))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid))},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: roots},
		{name: "tmp/", mode: 0o1777, dir: true},
	})
	if err != nil {
		return nil, err
	}
	var bins []entry
	for _, b := range []struct{ name, path string }{{"manager", o.manager}, {"mailserver", o.mailserver}} {
		e, err := binary(b.name, b.path)
		if err != nil {
			return nil, err
		}
		bins = append(bins, e)
	}
	binaries, err := layer(o.created, bins)
	if err != nil {
		return nil, err
	}

	labels := map[string]string{
		"org.opencontainers.image.title":       "kubemail",
		"org.opencontainers.image.description": "kubemail operator (/manager) and mail server (/mailserver)",
		"org.opencontainers.image.source":      "https://github.com/kubemail/kubemail",
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	if o.revision != "" {
		labels["org.opencontainers.image.revision"] = o.revision
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: o.arch,
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", uid, uid),
			Entrypoint: []string{"/manager"},
			Labels:     labels,
		},
	})
	if err != nil {
		return nil, err
	}
	// History mirrors the Dockerfile's steps, so `docker history` reads the same for both.
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{CreatedBy: "COPY /rootfs/ / # user database, root certificates, /tmp", Created: v1.Time{Time: o.created}}},
		mutate.Addendum{Layer: binaries, History: v1.History{CreatedBy: "COPY /out/manager /out/mailserver /", Created: v1.Time{Time: o.created}}},
	)
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: o.created})
}

// buildPause assembles the sandbox image: the pause binary alone, run as nobody.
func buildPause(o options) (v1.Image, error) {
	e, err := binary("pause", o.pause)
	if err != nil {
		return nil, err
	}
	l, err := layer(o.created, []entry{e})
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: o.arch,
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
		Config:       v1.Config{User: "65535:65535", Entrypoint: []string{"/pause"}},
	})
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "COPY /out/pause /", Created: v1.Time{Time: o.created}}})
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: o.created})
}

// binary reads a static Linux binary into an image entry.
func binary(name, path string) (entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return entry{}, err
	}
	if !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return entry{}, fmt.Errorf("%s is not a Linux (ELF) binary; build it with GOOS=linux CGO_ENABLED=0", path)
	}
	return entry{name: name, mode: 0o755, data: data}, nil
}

type entry struct {
	name string
	mode int64
	dir  bool
	data []byte
}

// layer makes a layer of files owned by root, every timestamp set to created.
func layer(created time.Time, entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: created}
		if e.dir {
			h.Typeflag = tar.TypeDir
			if !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}
